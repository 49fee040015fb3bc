package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aivo-platform/rotary/bot/slackfake"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
)

// kubeconfigTemplate points rotary's Kubernetes client at a loopback port
// nothing listens on: the benchmark targets never reach a Kubernetes step
// (their first step waits for a person), and rotary connects lazily.
const kubeconfigTemplate = `apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: bench
  user: {token: bench-unused}
contexts:
- name: bench
  context: {cluster: bench, user: bench}
current-context: bench
`

// fakesCmd serves the Slack Web API fake and the Secret Manager fake until
// ctx ends, after writing the environment rotary needs to reach them.
func fakesCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fakes", flag.ContinueOnError)
	envFile := fs.String("env", "", "write SLACK_API_URL, SECRETMANAGER_EMULATOR_HOST and KUBECONFIG assignments here (shell syntax)")
	kubeconfig := fs.String("kubeconfig", "", "write a kubeconfig for a Kubernetes that is never reached here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *envFile == "" || *kubeconfig == "" {
		return errors.New("fakes needs -env FILE and -kubeconfig FILE")
	}
	slack := slackfake.New()
	defer slack.Close()
	secrets, err := gsmfake.Start()
	if err != nil {
		return fmt.Errorf("start the Secret Manager fake: %w", err)
	}
	defer secrets.Close()
	if err := os.WriteFile(*kubeconfig, []byte(kubeconfigTemplate), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SLACK_API_URL=%s\nSECRETMANAGER_EMULATOR_HOST=%s\nKUBECONFIG=%s\nSLACK_BOT_TOKEN=%s\n",
		slack.APIURL(), secrets.Addr(), *kubeconfig, slackfake.DefaultToken)
	// Written last and renamed into place: its presence means "ready".
	tmp := *envFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write env file: %w", err)
	}
	if err := os.Rename(tmp, *envFile); err != nil {
		return fmt.Errorf("write env file: %w", err)
	}
	fmt.Fprintf(stdout, "fakes: Slack %s, Secret Manager %s\n", slack.URL(), secrets.Addr())
	<-ctx.Done()
	fmt.Fprintf(stdout, "fakes: %d Slack calls served\n", len(slack.Calls()))
	return nil
}
