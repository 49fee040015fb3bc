package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/aivo-platform/rotary/rotators"
)

// configCheck validates a config file and prints every problem with its key
// path. It builds every target's rotator without any client, so it needs no
// credentials and touches nothing.
func configCheck(path string, out io.Writer) error {
	cfg, problems, err := LoadConfig(path)
	if err != nil {
		return err
	}
	if cfg != nil {
		_, more := cfg.Build(kinds(), rotators.Deps{})
		problems = append(problems, more...)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(out, "%s: %s\n", path, p)
		}
		return fmt.Errorf("%s: %d problem(s)", path, len(problems))
	}
	fmt.Fprintf(out, "%s: OK (%d targets)\n", path, len(cfg.Targets))
	return nil
}

// plan prints the steps a rotation of target would run, touching nothing.
func plan(path, target, env string, out io.Writer) error {
	cfg, err := loadValid(path)
	if err != nil {
		return err
	}
	rots, _ := cfg.Build(kinds(), rotators.Deps{})
	pol := cfg.Policy()
	t, ok := pol.Targets[target]
	if !ok {
		return fmt.Errorf("unknown target %q; known targets: %s", target, strings.Join(hints(pol).Targets, ", "))
	}
	if env == "" {
		env = pol.DefaultEnv
	}
	if _, ok := t.Approvers[env]; !ok {
		return fmt.Errorf("target %q has no environment %q; it has: %s", target, env, strings.Join(t.Envs(), ", "))
	}
	p := rots[target].Plan(rotators.Spec{RequestID: "R-PLAN", Target: target, Env: env})
	fmt.Fprintf(out, "Rotation of %s (%s, kind %s):\n", target, env, t.Kind)
	for i, s := range p.Steps {
		fmt.Fprintf(out, "  %d. %s\n", i+1, s.Title)
	}
	if len(p.Rollback) > 0 {
		fmt.Fprintln(out, "If a step fails, rollback:")
		for i, s := range p.Rollback {
			fmt.Fprintf(out, "  %d. %s\n", i+1, s.Title)
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(out, "Note: %s\n", n)
	}
	ap := t.Approvers[env]
	fmt.Fprintf(out, "Approvers (%s): users %s; groups %s\n", env, orNone(ap.Users), orNone(ap.Groups))
	return nil
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
