package blocks

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aivo-platform/rotary/approvals"
)

// Block rendering benchmarks: every outbox delivery renders a message, and
// /rotate list and status render on Slack's 3-second ack path. Each one
// includes the JSON encoding Slack receives.

func benchRender(b *testing.B, render func() any) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(render()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderRequestPending(b *testing.B) {
	r := request(approvals.StatePending)
	benchRender(b, func() any {
		_, blks := Request(r, nil, []string{"The requester will be asked to paste the new key."}, tNow)
		return blks
	})
}

func BenchmarkRenderProgressRunning(b *testing.B) {
	r, run := request(approvals.StateRunning), runRunning()
	benchRender(b, func() any { _, blks := Progress(r, run); return blks })
}

func BenchmarkRenderStatusRolledBack(b *testing.B) {
	r, run := request(approvals.StateRolledBack), runRolledBack()
	benchRender(b, func() any { _, blks := Status(r, run, tNow); return blks })
}

func BenchmarkRenderList100(b *testing.B) {
	var rs []*approvals.Request
	for i := range 100 {
		r := request(approvals.StatePending)
		r.ID, r.Target = fmt.Sprintf("R-%06d", i), fmt.Sprintf("target%03d", i)
		rs = append(rs, r)
	}
	benchRender(b, func() any { _, blks := List(rs, tNow); return blks })
}

func BenchmarkRenderHelp(b *testing.B) {
	h := hints()
	benchRender(b, func() any { return Help(h) })
}
