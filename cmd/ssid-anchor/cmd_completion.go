package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionShells are the shells `completion` writes a script for.
var completionShells = []string{"bash", "zsh", "fish"}

func newCompletionCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: `Prints a script that makes the shell complete ssid-anchor's commands and flags
(it asks the binary itself, so it always fits the installed version):

  bash:  source <(ssid-anchor completion bash)             (e.g. in ~/.bashrc)
  zsh:   source <(ssid-anchor completion zsh)              (after compinit, in ~/.zshrc)
  fish:  ssid-anchor completion fish > ~/.config/fish/completions/ssid-anchor.fish

Reads no repo and no config.

Exit codes: 0 printed, 2 no or unknown shell.`,
		BashComplete: func(c *cli.Context) {
			if c.NArg() == 0 {
				for _, s := range completionShells {
					fmt.Fprintln(c.App.Writer, s)
				}
			}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return commandUsage{commandPath(c), fmt.Errorf("completion takes one shell: bash, zsh or fish (got %d arguments)", c.NArg())}
			}
			return writeCompletion(g.stdout, c, c.Args().First())
		},
	}
}

// completeVisible is a command's shell completion: urfave/cli's own, but
// offering only the flags its help lists (urfave's skips hidden bool flags
// only, so anchor offered verify's --gateway, --car and the rest).
func completeVisible(c *cli.Context) {
	cli.DefaultCompleteWithFlags(&cli.Command{Flags: c.Command.VisibleFlags(), Subcommands: c.Command.Subcommands})(c)
}

func writeCompletion(w io.Writer, c *cli.Context, shell string) error {
	switch shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(w, zshCompletion)
		return err
	case "fish":
		s, err := docsApp(false).ToFishCompletion()
		if err != nil {
			return fmt.Errorf("fish completion: %w", err)
		}
		_, err = io.WriteString(w, s)
		return err
	}
	if s := closest(shell, completionShells); s != "" {
		return commandUsage{commandPath(c), fmt.Errorf("completion: unknown shell %q; did you mean %q?", shell, s)}
	}
	return commandUsage{commandPath(c), fmt.Errorf("completion: unknown shell %q; want bash, zsh or fish", shell)}
}

// The bash and zsh scripts are urfave/cli v2's own (autocomplete/
// bash_autocomplete and zsh_autocomplete in github.com/urfave/cli, MIT
// licence), which ask the program for candidates with
// --generate-bash-completion (the app's EnableBashCompletion). The module
// ships them as files beside the Go code, not as Go values, so they are
// carried here, changed only where they would not work as printed: the
// program's name is filled in (urfave's scripts take it from the file
// name they were installed as, which is /dev/fd/63 under `source <(...)`),
// the bash one also works without the bash-completion package (which
// supplies _get_comp_words_by_ref; a minimal system has none), and it adds
// a space after a completed word (urfave's -o nospace leaves
// "ssid-anchor anchor" glued to the next word).
const bashCompletion = `# bash completion for ssid-anchor: source <(ssid-anchor completion bash)
_ssid_anchor_completion() {
  if [[ "${COMP_WORDS[0]}" != "source" ]]; then
    local cur prev words cword opts requestComp
    COMPREPLY=()
    if declare -F _init_completion >/dev/null 2>&1; then
      _init_completion -n "=:" || return
    else
      cur="${COMP_WORDS[COMP_CWORD]}"
      words=("${COMP_WORDS[@]}")
      cword=$COMP_CWORD
    fi
    words=("${words[@]:0:$cword}")
    if [[ "$cur" == "-"* ]]; then
      requestComp="${words[*]} ${cur} --generate-bash-completion"
    else
      requestComp="${words[*]} --generate-bash-completion"
    fi
    opts=$(eval "${requestComp}" 2>/dev/null)
    COMPREPLY=($(compgen -W "${opts}" -- ${cur}))
    return 0
  fi
}

complete -o bashdefault -o default -F _ssid_anchor_completion ssid-anchor
`

const zshCompletion = `#compdef ssid-anchor
# zsh completion for ssid-anchor: source <(ssid-anchor completion zsh)
# (after compinit), or save as _ssid-anchor in a directory of $fpath.

_ssid_anchor_completion() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi

  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}

compdef _ssid_anchor_completion ssid-anchor
`

func newManCommand(g *globalOptions) *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the man page (roff)",
		Description: `Prints ssid-anchor's manual page in roff, made from the same commands, flags
and descriptions as --help. Read it with:

  ssid-anchor man | man -l -

or install it: ssid-anchor man > /usr/local/share/man/man1/ssid-anchor.1

Reads no repo and no config.

Exit codes: 0 printed, 2 an argument was given.`,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return commandUsage{commandPath(c), fmt.Errorf("man takes no arguments (got %q)", c.Args().First())}
			}
			page, err := docsApp(true).ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("man page: %w", err)
			}
			_, err = io.WriteString(g.stdout, page)
			return err
		},
	}
}

// configFree are the commands that read no config (nor repo): they work
// whatever state the appliance config is in.
var configFree = map[string]bool{"completion": true, "man": true}

// docsApp is the command tree as the man page and the fish script describe
// it: a fresh app, not the one running (urfave/cli has added a help
// subcommand and a second --help to the command being run), with the
// repo's default spelled as for any user (~/.ssid-anchor, not this
// user's home), urfave's own --version flag left out (the app has its
// own), and for the man page, < and > in flag usages escaped for the
// markdown it is made from (go-md2man drops "<repo>" as an HTML tag).
func docsApp(man bool) *cli.App {
	app := newApp(&globalOptions{stdout: io.Discard, stderr: io.Discard})
	app.HideVersion = true
	app.Description = `Each command's --help describes it in full, with its exit codes. The global
options may come before or after the command. Exit codes: 0 success, 1
operational failure, 2 usage or config error, 3 repo locked or not
initialised, 130 interrupted.`
	for _, f := range app.Flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "repo" {
			sf.Value = "~/.ssid-anchor"
		}
	}
	if !man {
		return app
	}
	escapeUsages(app.Flags)
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			escapeUsages(c.Flags)
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return app
}

var markdownEscaper = strings.NewReplacer("<", `\<`, ">", `\>`)

func escapeUsages(flags []cli.Flag) {
	for _, f := range flags {
		switch f := f.(type) {
		case *cli.BoolFlag:
			f.Usage = markdownEscaper.Replace(f.Usage)
		case *cli.StringFlag:
			f.Usage = markdownEscaper.Replace(f.Usage)
		case *cli.StringSliceFlag:
			f.Usage = markdownEscaper.Replace(f.Usage)
		case *cli.DurationFlag:
			f.Usage = markdownEscaper.Replace(f.Usage)
		case *cli.IntFlag:
			f.Usage = markdownEscaper.Replace(f.Usage)
		}
	}
}
