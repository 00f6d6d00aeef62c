package main

// Discoverability of the command line (SPEC 3: "a mistyped command or flag
// gets a did-you-mean"): the messages for an unknown command, an unknown
// flag and a missing required flag, each one line naming what was wrong,
// what was probably meant and where the help is, instead of urfave/cli's
// "No help topic for 'anchr'", "-dryrun" with one dash, or the whole help
// printed before the one line that matters.

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/xrash/smetrics"
)

// closest returns the candidate nearest to typed by edit distance, or ""
// when none is near enough to be what was meant. The distance is
// smetrics.WagnerFischer's Levenshtein distance (the library urfave/cli
// already links for its own Jaro-Winkler suggestions). Levenshtein rather
// than urfave's Jaro-Winkler because Jaro-Winkler always names a "best"
// candidate, even for a word that resembles nothing: a suggestion is made
// only within 3 edits and when at most half of the candidate's letters
// differ ("anchr" → "anchor", "dryrun" → "dry-run", but nothing for "xyz").
func closest(typed string, candidates []string) string {
	typed = strings.ToLower(typed)
	best, bestD := "", 0
	for _, c := range candidates {
		d := smetrics.WagnerFischer(typed, strings.ToLower(c), 1, 1, 1)
		if d > 3 || 2*d > len(c) {
			continue
		}
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// commandNames are the names (and aliases) of the visible commands.
func commandNames(cmds []*cli.Command) []string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	return names
}

// unknownCommand is the usage error for a word that names no command:
// `unknown command "anchr"; did you mean "anchor"?`. parent is the command
// path the word was given to ("ssid-anchor", "ssid-anchor pins").
func unknownCommand(parent, word string, cmds []*cli.Command) error {
	if s := closest(word, commandNames(cmds)); s != "" {
		return commandUsage{parent, fmt.Errorf("unknown command %q; did you mean %q?", word, s)}
	}
	return commandUsage{parent, fmt.Errorf("unknown command %q", word)}
}

// commandUsage is a usage error of one command: its hint names that
// command's --help rather than the whole program's.
type commandUsage struct {
	path string // "ssid-anchor anchor"
	err  error
}

func (e commandUsage) Error() string { return e.err.Error() }
func (e commandUsage) Unwrap() error { return usageError{e.err} }

// flagUsageError rewrites a flag error of Go's flag package ("flag provided
// but not defined: -dryrun") as `unknown flag --dryrun; did you mean
// --dry-run?`, with the flag spelled as the help spells it (two dashes for
// a long name). Other parse errors (a bad value) are kept as they are.
func flagUsageError(c *cli.Context, err error, isSubcommand bool) error {
	path := commandPath(c)
	const undefined = "flag provided but not defined: -"
	msg := err.Error()
	i := strings.Index(msg, undefined)
	if i < 0 {
		return commandUsage{path, err}
	}
	name := strings.TrimLeft(msg[i+len(undefined):], "-")
	flags := c.App.Flags
	if isSubcommand {
		flags = c.Command.Flags
	}
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	if isSubcommand {
		// The global flags are accepted after the command too (SPEC 3).
		for n := range globalFlags {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	text := fmt.Sprintf("unknown flag %s", dashed(name))
	if isSubcommand {
		text += fmt.Sprintf(" for %q", c.Command.Name)
	}
	if s := closest(name, names); s != "" {
		text += fmt.Sprintf("; did you mean %s?", dashed(s))
	}
	return commandUsage{path, errors.New(text)}
}

// dashed spells a flag name as the help does: -h, --dry-run.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// commandPath is "ssid-anchor" or "ssid-anchor anchor" (or "ssid-anchor
// pins move"): what to put before --help.
func commandPath(c *cli.Context) string {
	var words []string
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name != "" {
			words = append(words, x.Command.Name)
		}
	}
	slices.Reverse(words)
	if len(words) == 0 || words[0] != c.App.Name {
		words = append([]string{c.App.Name}, words...)
	}
	return strings.Join(words, " ")
}

// checkRequiredHere moves every command's required flags from urfave/cli's
// own check, which prints the command's whole help (25 lines on stderr)
// before `Required flags "event, version, hash" not set`, into the
// command's Before: one line naming the missing flags, and a hint to the
// command's --help. urfave/cli v2 has no setting for a quiet check, hence
// this. Flags of a type not listed here stay with urfave's check
// (TestRequiredFlagsOneLine walks the app to keep that list complete).
func checkRequiredHere(cmd *cli.Command) {
	var required []string
	take := func(req *bool, name string) {
		if *req {
			*req = false
			required = append(required, name)
		}
	}
	for _, f := range cmd.Flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			take(&f.Required, f.Name)
		case *cli.StringSliceFlag:
			take(&f.Required, f.Name)
		case *cli.PathFlag:
			take(&f.Required, f.Name)
		case *cli.IntFlag:
			take(&f.Required, f.Name)
		case *cli.BoolFlag:
			take(&f.Required, f.Name)
		case *cli.DurationFlag:
			take(&f.Required, f.Name)
		}
	}
	if len(required) == 0 {
		return
	}
	before := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		var missing []string
		for _, name := range required {
			if !c.IsSet(name) {
				missing = append(missing, dashed(name))
			}
		}
		switch len(missing) {
		case 0:
		case 1:
			return commandUsage{commandPath(c), fmt.Errorf("missing required flag %s", missing[0])}
		default:
			return commandUsage{commandPath(c), fmt.Errorf("missing required flags %s", strings.Join(missing, ", "))}
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
}

// hiddenFlags hides flags from a command's help that it accepts for
// another's sake: anchor takes verify's flags with --verify (the seed's
// spelling), but its help lists only anchoring's own.
func hiddenFlags(flags []cli.Flag) []cli.Flag {
	for _, f := range flags {
		switch f := f.(type) {
		case *cli.BoolFlag:
			f.Hidden = true
		case *cli.StringFlag:
			f.Hidden = true
		case *cli.StringSliceFlag:
			f.Hidden = true
		case *cli.DurationFlag:
			f.Hidden = true
		default:
			panic(fmt.Sprintf("hiddenFlags: flag type %T not handled", f))
		}
	}
	return flags
}
