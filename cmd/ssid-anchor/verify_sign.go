package main

import (
	"fmt"
	"io"

	"github.com/ssid/ssid-anchor/anchor"
)

// printSignaturesHuman says who signed the manifest and what is wrong with
// any signature of the chain.
func printSignaturesHuman(w io.Writer, rep *anchor.VerifyReport) {
	s := rep.Signatures
	if rep.Signer != nil {
		trust := ""
		if len(s.Trusted) > 0 {
			trust = " (trusted)"
		}
		fmt.Fprintf(w, "signer  %s%s, since manifest %s (%s)\n", rep.Signer.PeerID, trust, rep.Signer.Since.ManifestCID, rep.Signer.Since.Date)
	} else if len(s.Manifests) > 0 && s.Manifests[0].Status == anchor.SigUnsigned {
		fmt.Fprintln(w, "signer  none: the manifest is unsigned")
	}
	for _, m := range s.Manifests {
		if !m.OK {
			fmt.Fprintf(w, "sig     FAILED  %s: %s\n", m.CID, m.Detail)
		}
	}
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "sig     note: %s\n", warn)
	}
	if s.OK && len(s.Manifests) > 0 {
		signed := 0
		for _, m := range s.Manifests {
			if m.Status == anchor.SigValid {
				signed++
			}
		}
		fmt.Fprintf(w, "sig     ok: %d of %d manifest(s) of the chain signed\n", signed, len(s.Manifests))
	}
}
