package blocks

import (
	"strings"

	"github.com/aivo-platform/rotary/commands"
)

// Help is the answer to `/rotate help`: the commands (their usage lines come
// from the parser, so help and parser cannot disagree), how a rotation is
// approved, and the configured targets with their environments.
func Help(h Hints) string {
	var b strings.Builder
	b.WriteString("*rotary* rotates production secrets under a two-person rule: you ask, a second person approves, rotary does the rotation and reports in the thread.\n\n")
	b.WriteString("*Commands*\n")
	for _, u := range commands.UsageLines() {
		b.WriteString("• `" + esc(u) + "`\n")
	}
	b.WriteString("\n`/rotate-jwt` is `/rotate " + name(commands.TargetJWT) + "`. `--emergency` is the compromised-secret path: it needs a `--reason`, alerts the whole channel, can be approved by the on-call responders, expires quickly, and rotates without a grace period. ")
	b.WriteString("`/rotate rollback " + esc("<id>") + "` restores what a finished rotation replaced; it is approved like any request. ")
	b.WriteString("The request is posted with *Approve* and *Deny* buttons for the target's approvers; it expires if nobody decides in time.\n\n")
	b.WriteString("*Targets*\n")
	ts := targets(h)
	if len(ts) == 0 {
		b.WriteString("None configured.")
	}
	for i, t := range ts {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("• `" + name(t) + "`: " + list(h.Envs[t]))
	}
	return fit(b.String(), maxSectionText)
}
