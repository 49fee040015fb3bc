package encryption

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/kube"
)

// Job naming limits. A Job's name is also a label value on its pods
// (job-name), so it is a DNS label of at most 63 characters.
const (
	maxJobName = validation.DNS1123LabelMaxLength
	// maxTemplateName leaves room after a template's name for "-" and the
	// request ID (R-XXXXXXXX today), so derived names are not truncated.
	maxTemplateName = 40
	// maxJobSuffix caps the request-ID part of a Job name.
	maxJobSuffix = 20
	// jobHashLen is how many hex digits of the request ID's SHA-256 a Job
	// name carries when the ID had to be altered to fit.
	jobHashLen = 8
)

// documentSeparator matches a YAML document separator line.
var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeJob expands {env} in a Job template's text and decodes it strictly
// (unknown fields, such as a misspelt restartPolicy, are errors) into a Job.
func decodeJob(text, env string) (*batchv1.Job, error) {
	expanded := expandEnv(text, env)
	docs := 0
	for _, d := range documentSeparator.Split(expanded, -1) {
		if strings.TrimSpace(d) != "" {
			docs++
		}
	}
	if docs > 1 {
		return nil, fmt.Errorf("holds %d YAML documents; give exactly one Job", docs)
	}
	var job batchv1.Job
	if err := sigsyaml.UnmarshalStrict([]byte(expanded), &job); err != nil {
		return nil, fmt.Errorf("is not a batch/v1 Job manifest: %w", err)
	}
	return &job, nil
}

// checkJob validates a decoded template; paths are relative to the template.
func checkJob(job *batchv1.Job, namespace string) []rotators.Problem {
	var ps []rotators.Problem
	add := func(path, format string, a ...any) {
		ps = append(ps, rotators.Problem{Path: path, Message: fmt.Sprintf(format, a...)})
	}
	if job.APIVersion != "batch/v1" {
		add("apiVersion", "is %q, want batch/v1", job.APIVersion)
	}
	if job.Kind != "Job" {
		add("kind", "is %q, want Job", job.Kind)
	}
	switch {
	case job.Name == "":
		add("metadata.name", "is required: the Job is named <metadata.name>-<request id>")
	case len(job.Name) > maxTemplateName:
		add("metadata.name", "%q is longer than %d characters (the request id is appended)", job.Name, maxTemplateName)
	case len(validation.IsDNS1123Label(job.Name)) > 0:
		add("metadata.name", "%q is not a DNS label (lowercase letters, digits and -)", job.Name)
	}
	if job.GenerateName != "" {
		add("metadata.generateName", "must not be set: rotary names the Job after the request, so a repeated step finds it")
	}
	if job.Namespace != "" && job.Namespace != namespace {
		add("metadata.namespace", "is %q, but the Job runs in the target's namespace %q; leave it out", job.Namespace, namespace)
	}
	if _, ok := job.Labels[kube.RequestLabel]; ok {
		add("metadata.labels", "must not set %s: rotary sets it to the request id", kube.RequestLabel)
	}
	pod := job.Spec.Template.Spec
	if len(pod.Containers) == 0 {
		add("spec.template.spec.containers", "at least one container is required")
	}
	for i, c := range pod.Containers {
		path := fmt.Sprintf("spec.template.spec.containers[%d]", i)
		if c.Name == "" {
			add(path+".name", "is required")
		}
		if c.Image == "" {
			add(path+".image", "is required")
		}
	}
	switch pod.RestartPolicy {
	case corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure:
	default:
		add("spec.template.spec.restartPolicy", "is %q; a Job needs Never or OnFailure", pod.RestartPolicy)
	}
	return ps
}

// JobName is the name of the Job made from a template named base for
// requestID: "<base>-<lowercased requestID>". A request ID that is not made of
// [a-z0-9-] once lowercased, or is long, is reduced and followed by a hash of
// the original, so the name stays a valid, deterministic DNS label.
func JobName(base, requestID string) string {
	id := strings.ToLower(requestID)
	if len(id) > maxJobSuffix || len(validation.IsDNS1123Label(id)) > 0 {
		sum := sha256.Sum256([]byte(requestID))
		hash := hex.EncodeToString(sum[:])[:jobHashLen]
		var b strings.Builder
		for _, r := range id {
			if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
				b.WriteRune(r)
			} else {
				b.WriteByte('-')
			}
		}
		clean := strings.Trim(b.String(), "-")
		if keep := maxJobSuffix - jobHashLen - 1; len(clean) > keep {
			clean = strings.Trim(clean[:keep], "-")
		}
		id = hash
		if clean != "" {
			id = clean + "-" + hash
		}
	}
	if room := maxJobName - len(id) - 1; len(base) > room {
		base = strings.TrimRight(base[:room], "-")
	}
	return base + "-" + id
}

// buildJob makes the Job to create from template tpl: named name in ns,
// labelled (Job and pods) with the request, so kubectl finds both with
// -l rotary.aivo.io/request=<id> and CreateJob recognises a repeat. Only the
// template's labels and annotations are kept of its metadata; its spec is
// used as is (ttlSecondsAfterFinished, backoffLimit and the like included).
func buildJob(tpl *batchv1.Job, ns, name, requestID string) *batchv1.Job {
	job := &batchv1.Job{TypeMeta: tpl.TypeMeta}
	job.Name = name
	job.Namespace = ns
	job.Labels = withLabel(tpl.Labels, kube.RequestLabel, requestID)
	job.Annotations = maps.Clone(tpl.Annotations)
	job.Spec = *tpl.Spec.DeepCopy()
	job.Spec.Template.Labels = withLabel(job.Spec.Template.Labels, kube.RequestLabel, requestID)
	return job
}

func withLabel(labels map[string]string, key, value string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[key] = value
	return out
}

// describeJob is a one-line summary of what a Job runs, for the request
// message: its containers' images and commands.
func describeJob(job *batchv1.Job) string {
	var parts []string
	for _, c := range job.Spec.Template.Spec.Containers {
		s := "image " + c.Image
		if cmd := strings.Join(append(append([]string{}, c.Command...), c.Args...), " "); cmd != "" {
			s += ", command `" + cmd + "`"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
