package commands

import "testing"

// BenchmarkParse parses the command lines Slack sends most, plus a long
// hostile one, as the ack path does for every /rotate.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct{ name, text string }{
		{"rotate", `openai --env prod --reason "quarterly rotation"`},
		{"list", "list"},
		{"status", "status R-7K2M9Q4X"},
		{"cancel", "cancel R-7K2M9Q4X"},
		{"hostile", `openai --reason "` + longReason + `" --env prod --env staging`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Parse(tc.text)
			}
		})
	}
}

const longReason = "rotating because the key was pasted in a channel by mistake; " +
	"rotating because the key was pasted in a channel by mistake; " +
	"rotating because the key was pasted in a channel by mistake; " +
	"rotating because the key was pasted in a channel by mistake"
