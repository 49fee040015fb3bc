package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Targets of issue 6, on the 2-core machine, in the same run.
const (
	targetThroughputRatio = 3.0  // rotary ≥ 3× Bolt's throughput
	targetP99Ratio        = 0.25 // rotary p99 ≤ ¼ of Bolt's
	targetFirstStepP99ms  = 50.0
	targetIdleRSSMiB      = 30.0
	targetLoadedRSSMiB    = 80.0
	targetScaleMs         = 10.0 // list and status at 1 000 000 requests
	targetColdStartMs     = 1000.0
)

// reportCmd renders bench/RESULTS.md from what bench/run.sh collected.
func reportCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	resultsPath := fs.String("results", "", "JSON lines written by `loadgen run -json`")
	figuresPath := fs.String("figures", "", "lines of `name value` (cold start, first step, machine facts)")
	benchPath := fs.String("gobench", "", "output of go test -bench")
	notesPath := fs.String("notes", "", "hand-written analysis to include (Markdown)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *resultsPath == "" || *figuresPath == "" {
		return errors.New("report needs -results and -figures")
	}
	results, err := readResults(*resultsPath)
	if err != nil {
		return err
	}
	figures, order, err := readFigures(*figuresPath)
	if err != nil {
		return err
	}
	var b strings.Builder
	writeReport(&b, results, figures, order)
	if *benchPath != "" {
		raw, err := os.ReadFile(*benchPath)
		if err != nil {
			return fmt.Errorf("read -gobench: %w", err)
		}
		b.WriteString("\n## Go micro-benchmarks\n\n`go test -run=^$ -bench=. -benchtime=2000x` on the parser, the signature check, the store commit and block rendering (same machine, same run):\n\n```\n")
		for line := range strings.Lines(string(raw)) {
			if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "pkg:") {
				b.WriteString(line)
			}
		}
		b.WriteString("```\n")
	}
	if *notesPath != "" {
		raw, err := os.ReadFile(*notesPath)
		if err != nil {
			return fmt.Errorf("read -notes: %w", err)
		}
		b.WriteString("\n")
		b.Write(raw)
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

func readResults(path string) ([]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read -results: %w", err)
	}
	defer f.Close()
	var out []result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("read -results: line %d: %w", len(out)+1, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

func readFigures(path string) (map[string]string, []string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read -figures: %w", err)
	}
	out := map[string]string{}
	var order []string
	for line := range strings.Lines(string(raw)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if _, seen := out[k]; !seen {
			order = append(order, k)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, order, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func met(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func mib(kib int) float64 { return float64(kib) / 1024 }

// group is the runs of one server on one workload and concurrency.
type group struct {
	runs []result
}

func (g group) med(f func(result) float64) float64 {
	var xs []float64
	for _, r := range g.runs {
		xs = append(xs, f(r))
	}
	return median(xs)
}

func (g group) maxPeak() int {
	m := 0
	for _, r := range g.runs {
		m = max(m, r.PeakRSSKiB)
	}
	return m
}

func (g group) errors() int {
	n := 0
	for _, r := range g.runs {
		n += r.Errors
	}
	return n
}

func writeReport(b *strings.Builder, results []result, fig map[string]string, order []string) {
	b.WriteString("# Benchmark results\n\nWritten by `bench/run.sh` (do not edit by hand; rerun it). Targets are issue 6's; a missed target stays in the table.\n\n")
	for _, k := range order {
		if strings.HasPrefix(k, "machine.") {
			fmt.Fprintf(b, "- %s: %s\n", strings.TrimPrefix(k, "machine."), fig[k])
		}
	}
	groups := map[string]*group{}
	key := func(label, scenario string, c int) string { return fmt.Sprintf("%s/%s/%d", label, scenario, c) }
	for _, r := range results {
		k := key(r.Label, r.Scenario, r.Concurrency)
		if groups[k] == nil {
			groups[k] = &group{}
		}
		groups[k].runs = append(groups[k].runs, r)
	}

	b.WriteString("\n## rotary vs Slack Bolt for JavaScript\n\n")
	b.WriteString("Same signed requests from `bench/loadgen` to each server on loopback, in alternation (rotary, Bolt, rotary, Bolt, …), each run on a fresh server. Figures are the median over the rounds; peak RSS is the highest VmHWM of any round. rotary commits every command and approval to bbolt with fsync; Bolt keeps its state in memory.\n\n")
	b.WriteString("| workload | connections | rotary req/s | Bolt req/s | throughput ratio (target ≥ 3×) | rotary p99 ms | Bolt p99 ms | p99 ratio (target ≤ 0.25) | rotary peak RSS MiB | Bolt peak RSS MiB | errors rotary/Bolt |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range []string{"commands", "approvals"} {
		for _, c := range []int{16, 64} {
			ro, bo := groups[key("rotary", sc, c)], groups[key("bolt", sc, c)]
			if ro == nil || bo == nil {
				continue
			}
			rt, bt := ro.med(func(r result) float64 { return r.Throughput }), bo.med(func(r result) float64 { return r.Throughput })
			rp, bp := ro.med(func(r result) float64 { return r.P99ms }), bo.med(func(r result) float64 { return r.P99ms })
			tr, pr := rt/bt, rp/bp
			fmt.Fprintf(b, "| %s | %d | %.0f | %.0f | %.2f× %s | %.1f | %.1f | %.2f %s | %.1f | %.1f | %d/%d |\n",
				sc, c, rt, bt, tr, met(tr >= targetThroughputRatio), rp, bp, pr, met(pr <= targetP99Ratio),
				mib(ro.maxPeak()), mib(bo.maxPeak()), ro.errors(), bo.errors())
		}
	}
	b.WriteString("\n<details><summary>Every run</summary>\n\n| server | workload | c | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | idle RSS MiB | peak RSS MiB | idle anon MiB | loaded anon MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(b, "| %s | %s | %d | %d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f |\n",
			r.Label, r.Scenario, r.Concurrency, r.Requests, r.Errors, r.Throughput, r.P50ms, r.P90ms, r.P99ms, r.MaxMs,
			mib(r.IdleRSSKiB), mib(r.PeakRSSKiB), mib(r.IdleAnonKiB), mib(r.LoadedAnonKB))
	}
	b.WriteString("\n</details>\n")

	b.WriteString("\n## rotary's own figures\n\n| figure | measured | target | |\n|---|---|---|---|\n")
	num := func(k string) (float64, bool) {
		v, err := strconv.ParseFloat(fig[k], 64)
		return v, err == nil
	}
	if p99, ok := num("first_step.p99_ms"); ok {
		p50, _ := num("first_step.p50_ms")
		fmt.Fprintf(b, "| approval click → first executor step started (in process, %s approvals, fsync on) | p50 %.1f ms, p99 %.1f ms | p99 ≤ %.0f ms | %s |\n", fig["first_step.n"], p50, p99, targetFirstStepP99ms, met(p99 <= targetFirstStepP99ms))
	}
	var idle, idleAnon, peak, loadedAnon []float64
	for _, r := range results {
		if r.Label == "rotary" && r.IdleRSSKiB > 0 {
			idle = append(idle, mib(r.IdleRSSKiB))
			idleAnon = append(idleAnon, mib(r.IdleAnonKiB))
			peak = append(peak, mib(r.PeakRSSKiB))
			loadedAnon = append(loadedAnon, mib(r.LoadedAnonKB))
		}
	}
	if len(idle) > 0 {
		i, ia := median(idle), median(idleAnon)
		p, pa := slices.Max(peak), slices.Max(loadedAnon)
		fmt.Fprintf(b, "| idle RSS (VmRSS after start; anonymous part) | %.1f MiB (anon %.1f MiB) | ≤ %.0f MiB | %s |\n", i, ia, targetIdleRSSMiB, met(i <= targetIdleRSSMiB))
		fmt.Fprintf(b, "| RSS under load (highest VmHWM of any run; anonymous part at the end) | %.1f MiB (anon %.1f MiB) | ≤ %.0f MiB | %s |\n", p, pa, targetLoadedRSSMiB, met(p <= targetLoadedRSSMiB))
	}
	if v, ok := num("cold_start_100k.ms"); ok {
		fmt.Fprintf(b, "| cold start with %s stored requests (exec → /readyz 200; median of 3) | %.0f ms (empty file: %s ms) | ≤ %.0f ms | %s |\n", fig["cold_start_100k.requests"], v, fig["cold_start_empty.ms"], targetColdStartMs, met(v <= targetColdStartMs))
	}
	hangs := 0
	for _, k := range order {
		if strings.HasPrefix(k, "shutdown.hang.") {
			hangs++
		}
	}
	fmt.Fprintf(b, "| processes that did not exit within the grace period of SIGTERM (killed) | %d | 0 | %s |\n", hangs, met(hangs == 0))
	for _, sc := range []string{"list", "status"} {
		g := groups[key(sc+"-1m", sc, 1)]
		if g == nil || len(g.runs) == 0 {
			continue
		}
		r := g.runs[0]
		fmt.Fprintf(b, "| `/rotate %s` with %s stored requests (whole signed request, 1 connection, %d requests) | p50 %.2f ms, p99 %.2f ms | ≤ %.0f ms | %s |\n",
			sc, fig["scale.requests"], r.Requests, r.P50ms, r.P99ms, targetScaleMs, met(r.P99ms <= targetScaleMs && r.Errors == 0))
	}
}
