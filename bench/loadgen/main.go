// Command loadgen is rotary's benchmark tool. It drives a Slack app over
// HTTP exactly as Slack does (form posts signed with the v0 HMAC over a fresh
// timestamp), against rotary or the Bolt peer alike, and it prepares what a
// benchmarked rotary needs around it.
//
//	loadgen run     send signed slash commands or button clicks at a chosen
//	                concurrency for a bounded time and count; print
//	                throughput, p50/p90/p99/max latency and errors
//	loadgen fakes   serve the Slack Web API and Secret Manager fakes
//	                (bot/slackfake, gsmfake) until stopped, for rotary's
//	                outbox and executor to talk to during a benchmark
//	loadgen config  write a rotary config with many request slots
//	loadgen seed    fill a state file with stored requests (cold start,
//	                list and status at scale)
//	loadgen ready   wait for an HTTP URL to answer 200 and print how long it took
//	loadgen report  render bench/RESULTS.md from the runs bench/run.sh collected
//
// Rules: it only ever talks to loopback addresses (a load test pointed at a
// real host by mistake is refused, not run); the signing secret comes from
// the environment (SLACK_SIGNING_SECRET), never from a flag; every run is
// bounded in time and in count.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: loadgen <run|fakes|config|seed|ready|report> [flags]   (loadgen <cmd> -h for flags)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command given\n%s", usage)
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, getenv)
	case "fakes":
		return fakesCmd(ctx, args[1:], stdout)
	case "config":
		return configCmd(args[1:], stdout)
	case "seed":
		return seedCmd(ctx, args[1:], stdout)
	case "ready":
		return readyCmd(ctx, args[1:], stdout)
	case "report":
		return reportCmd(args[1:], stdout)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}
