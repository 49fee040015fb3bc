// Package kindconfig owns the checks every rotation kind applies to its
// target settings: required names matched against a pattern, placeholder
// typos, and bounded durations. A kind validates its own Config with a
// Validator and keeps its kind-specific checks (URLs, identifiers, Job
// templates…) as functions over it.
//
// Rules: problems are collected, never returned one at a time, so an
// operator sees every mistake in one pass; paths are relative to the target
// (the config loader prefixes them); messages quote the offending setting
// but never read or echo a secret value (settings here are names, never
// credentials); values are checked with {env} expanded to a sample, because
// no request (and so no environment) exists at load time.
package kindconfig

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aivo-platform/rotary/rotators"
)

// EnvPlaceholder is the placeholder every kind replaces with the request's
// environment.
const EnvPlaceholder = "{env}"

// SampleEnv stands in for the environment when a value is validated before
// any request exists.
const SampleEnv = "env"

// Validator collects the problems found in one target's settings. Set its
// fields before the first check; a kind embeds it in its own validator type
// to add kind-specific checks.
type Validator struct {
	// DurationExample is suggested when a duration does not parse (e.g.
	// "2m, 90s"): each kind suggests values typical of its own timeouts.
	DurationExample string
	// MorePlaceholders is set by a kind with placeholders besides {env}
	// in some settings: a stray brace is then reported with the list
	// allowed at that path, instead of calling {env} the only one there is.
	MorePlaceholders bool

	problems []rotators.Problem
}

// Problems returns the problems found so far, in the order found.
func (v *Validator) Problems() []rotators.Problem { return v.problems }

// Add records a problem at path (relative to the target).
func (v *Validator) Add(path, msg string) {
	v.problems = append(v.problems, rotators.Problem{Path: path, Message: msg})
}

// Placeholders reports braces other than {env} and the allowed
// placeholders: a typo such as {ENV} would otherwise reach Kubernetes or
// the provider literally. It returns whether s is free of such braces.
func (v *Validator) Placeholders(path, s string, allowed ...string) bool {
	names := append([]string{EnvPlaceholder}, allowed...)
	rest := s
	for _, p := range names {
		rest = strings.ReplaceAll(rest, p, "")
	}
	if !strings.ContainsAny(rest, "{}") {
		return true
	}
	if v.MorePlaceholders {
		v.Add(path, fmt.Sprintf("%q uses a placeholder other than %s", s, strings.Join(names, ", ")))
	} else {
		v.Add(path, fmt.Sprintf("%q uses a placeholder other than %s (the only one there is)", s, EnvPlaceholder))
	}
	return false
}

// Name checks a required name against pattern, with {env} expanded; what
// says what the name should be ("a Kubernetes namespace name").
func (v *Validator) Name(path, s, pattern, what string) {
	if s == "" {
		v.Add(path, "is required")
		return
	}
	if !v.Placeholders(path, s) {
		return
	}
	if !regexp.MustCompile(pattern).MatchString(strings.ReplaceAll(s, EnvPlaceholder, SampleEnv)) {
		v.Add(path, fmt.Sprintf("%q is not %s", s, what))
	}
}

// Duration parses an optional duration: def when s is empty or bad, and a
// problem when it does not parse, is not positive (zero is allowed only
// with zeroOK, for settings where zero means "at once"), or exceeds maxD,
// which catches a mistyped unit ("2h" for "2m").
func (v *Validator) Duration(path, s string, def, maxD time.Duration, zeroOK bool) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		v.Add(path, fmt.Sprintf("%q is not a duration (e.g. %s)", s, v.DurationExample))
	case d < 0 || (d == 0 && !zeroOK):
		v.Add(path, "must be positive")
	case d > maxD:
		v.Add(path, fmt.Sprintf("%s is longer than the maximum %s", d, maxD))
	default:
		return d
	}
	return def
}
