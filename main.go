// Command rotary is a Slack ChatOps bot that rotates production secrets
// under a two-person rule.
//
//	rotary serve --config FILE          run the bot
//	rotary plan TARGET [--env ENV]      print the steps a rotation would run (touches nothing)
//	rotary config check --config FILE   validate a config file, printing every problem
//	rotary audit export ID              print a request's full history as JSON
//
// main.go only parses the command line; app.go assembles config → store →
// clients → services → server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "rotary:", err)
		os.Exit(exitCode(err))
	}
}

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg + "\n\n" + usage }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

const usage = `usage:
  rotary serve [--config FILE]                 run the bot (default config: rotary.yaml)
  rotary plan TARGET [--env ENV] [--config FILE]  print the steps a rotation would run; touches nothing
  rotary config check [--config FILE]          validate a config file and print every problem
  rotary audit export ID [--config FILE]       print a request's full history as JSON (incident record)
  rotary try [--config FILE] [--port N] [--state FILE] [--sim-delay D]
                                               the bot with a local console that plays Slack, on a simulated platform`

// defaultConfigPath is used when --config is not given.
const defaultConfigPath = "rotary.yaml"

// run dispatches a subcommand. It is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		fs := newFlagSet("serve")
		path := fs.String("config", defaultConfigPath, "config file")
		if err := parseNoArgs(fs, args[1:]); err != nil {
			return err
		}
		return serve(ctx, *path, stdout, getenv)
	case "plan":
		fs := newFlagSet("plan")
		path := fs.String("config", defaultConfigPath, "config file")
		env := fs.String("env", "", "environment (default: the config's default_env)")
		pos, err := parseArgs(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{"plan needs exactly one target, e.g. rotary plan openai --env prod"}
		}
		return plan(*path, pos[0], *env, stdout)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			return usageError{`unknown config command; did you mean "rotary config check"?`}
		}
		fs := newFlagSet("config check")
		path := fs.String("config", defaultConfigPath, "config file")
		if err := parseNoArgs(fs, args[2:]); err != nil {
			return err
		}
		return configCheck(*path, stdout)
	case "try":
		return tryCmd(ctx, args[1:], stdout, getenv)
	case "audit":
		if len(args) < 2 || args[1] != "export" {
			return usageError{`unknown audit command; did you mean "rotary audit export R-…"?`}
		}
		fs := newFlagSet("audit export")
		path := fs.String("config", defaultConfigPath, "config file")
		pos, err := parseArgs(fs, args[2:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{"audit export needs exactly one request ID, e.g. rotary audit export R-7K2M9Q"}
		}
		return auditExport(ctx, *path, pos[0], stdout, time.Now)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageError{"rotary " + fs.Name()}
		}
		return usageError{err.Error()}
	}
	return nil
}

// parseArgs parses flags wherever they stand among the positional
// arguments (the flag package stops at the first positional one) and
// returns the positionals in order.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseNoArgs parses flags and refuses positional arguments, which would
// otherwise be silently ignored (`rotary config check new.yaml`).
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q; did you mean --config %s?", pos[0], pos[0])}
	}
	return nil
}
