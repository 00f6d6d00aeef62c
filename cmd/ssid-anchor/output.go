package main

import (
	"encoding/json"
	"io"
)

// notices is where a command prints what is neither its result nor a
// warning or error ("queued 3 remote pin requests", hints for the next
// step): stderr, or nowhere with --quiet (SPEC 3, streams).
func (g *globalOptions) notices() io.Writer {
	if g.Quiet {
		return io.Discard
	}
	return g.stderr
}

// writeJSON prints one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
