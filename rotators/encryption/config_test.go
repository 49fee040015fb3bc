package encryption

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/rotators"
)

// withTarget returns targetYAML() with top-level keys changed: each argument
// is "key: yaml value" (replacing or adding key) or "key: -" (deleting it).
func withTarget(changes ...string) string {
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(targetYAML()), &doc); err != nil {
		panic(err)
	}
	for _, c := range changes {
		key, val, _ := strings.Cut(c, ": ")
		if val == "-" {
			delete(doc, key)
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(val), &v); err != nil {
			panic(err)
		}
		doc[key] = v
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return string(out)
}

// withJob returns the migration template with old replaced by new.
func withJob(old, new string) string {
	if !strings.Contains(reencryptJob, old) {
		panic("template has no " + old)
	}
	return "migration_job: " + quoteYAML(strings.Replace(reencryptJob, old, new, 1))
}

func quoteYAML(s string) string {
	b, err := yaml.Marshal(s)
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(b))
}

func TestBuildValid(t *testing.T) {
	tests := []struct {
		name        string
		src         string
		wantKey     string
		wantNew     string
		wantJob     time.Duration
		wantRollout time.Duration
		wantVerify  bool
	}{
		{"defaults", targetYAML(), DefaultKeyName, DefaultNewKeyName, DefaultJobTimeout, DefaultRolloutTimeout, false},
		{"explicit", targetYAML("key_name: APP_KEY", "old_key_name: APP_KEY_OLD", "new_key_name: APP_KEY_NEW", "job_timeout: 3h", "rollout_timeout: 15m"),
			"APP_KEY", "APP_KEY_NEW", 3 * time.Hour, 15 * time.Minute, false},
		{"key name is the new key's name", targetYAML("key_name: NEW_ENCRYPTION_KEY"), DefaultNewKeyName, DefaultNewKeyName, DefaultJobTimeout, DefaultRolloutTimeout, false},
		{"verification job", targetYAML("verification_job: |\n" + indent(verifyJob)), DefaultKeyName, DefaultNewKeyName, DefaultJobTimeout, DefaultRolloutTimeout, true},
		{"template namespace matches", withTarget(withJob("name: reencrypt\n", "name: reencrypt\n  namespace: aivo-{env}\n")), DefaultKeyName, DefaultNewKeyName, DefaultJobTimeout, DefaultRolloutTimeout, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rot, problems := Build("encryption", yamlDecode(tt.src), rotators.Deps{})
			if len(problems) > 0 {
				t.Fatalf("problems: %v\n%s", problems, tt.src)
			}
			r := rot.(*Rotator)
			if r.s.KeyName != tt.wantKey || r.s.NewKeyName != tt.wantNew || r.s.jobTimeout != tt.wantJob || r.s.rolloutTimeout != tt.wantRollout {
				t.Errorf("settings = %q %q %v %v", r.s.KeyName, r.s.NewKeyName, r.s.jobTimeout, r.s.rolloutTimeout)
			}
			if got := r.s.VerificationJob != ""; got != tt.wantVerify {
				t.Errorf("verification job set = %v", got)
			}
			if r.clients.Cluster != nil {
				t.Error("a nil kube client must stay a nil interface")
			}
			if r.clients.Rand == nil {
				t.Error("no randomness source by default")
			}
		})
	}
}

func TestBuildProblems(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantPath string
		wantMsg  string
	}{
		{"unknown key", withTarget("rotate_every: 90d"), "", "rotate_every"},
		{"no namespace", withTarget("namespace: -"), "namespace", "required"},
		{"bad namespace", withTarget("namespace: Aivo_Prod"), "namespace", "Kubernetes namespace"},
		{"no secret", withTarget("secret: -"), "secret", "required"},
		{"bad secret", withTarget("secret: App Keys"), "secret", "Secret name"},
		{"other placeholder", withTarget("secret: 'keys-{ENV}'"), "secret", "placeholder"},
		{"bad key name", withTarget("key_name: 'ENCRYPTION KEY'"), "key_name", "Secret data key"},
		{"old equals new", withTarget("old_key_name: K", "new_key_name: K"), "new_key_name", "two names"},
		{"old equals key", withTarget("old_key_name: ENCRYPTION_KEY"), "old_key_name", "key_name"},
		{"no deployments", withTarget("deployments: []"), "deployments", "at least one"},
		{"duplicate deployment", withTarget("deployments: [a, b, a]"), "deployments[2]", "listed twice"},
		{"bad deployment", withTarget("deployments: [ok, 'Not OK']"), "deployments[1]", "Deployment name"},
		{"bad duration", withTarget("job_timeout: 2 hours"), "job_timeout", "not a duration"},
		{"negative duration", withTarget("rollout_timeout: -1m"), "rollout_timeout", "positive"},
		{"too long", withTarget("job_timeout: 48h"), "job_timeout", "maximum"},
		{"no migration job", withTarget("migration_job: -"), "migration_job", "required"},
		{"not yaml", withTarget("migration_job: 'a: [b'"), "migration_job", "not a batch/v1 Job"},
		{"unknown job field", withTarget(withJob("restartPolicy: Never", "restartPolicy: Never\n      restartPolcy: Never")), "migration_job", "restartPolcy"},
		{"two documents", withTarget("migration_job: " + quoteYAML(reencryptJob+"---\n"+verifyJob)), "migration_job", "2 YAML documents"},
		{"wrong kind", withTarget(withJob("kind: Job", "kind: CronJob")), "migration_job.kind", "want Job"},
		{"wrong api version", withTarget(withJob("batch/v1", "batch/v1beta1")), "migration_job.apiVersion", "batch/v1"},
		{"no job name", withTarget(withJob("  name: reencrypt\n", "")), "migration_job.metadata.name", "required"},
		{"bad job name", withTarget(withJob("name: reencrypt\n", "name: Re_Encrypt\n")), "migration_job.metadata.name", "DNS label"},
		{"long job name", withTarget(withJob("name: reencrypt\n", "name: "+strings.Repeat("r", 41)+"\n")), "migration_job.metadata.name", "longer than 40"},
		{"generate name", withTarget(withJob("name: reencrypt\n", "name: reencrypt\n  generateName: re-\n")), "migration_job.metadata.generateName", "must not be set"},
		{"other namespace", withTarget(withJob("name: reencrypt\n", "name: reencrypt\n  namespace: default\n")), "migration_job.metadata.namespace", "leave it out"},
		{"request label", withTarget(withJob("labels: {app.kubernetes.io/name: reencrypt}\n  annotations", "labels: {rotary.aivo.io/request: x}\n  annotations")), "migration_job.metadata.labels", "rotary sets it"},
		{"no containers", withTarget("migration_job: " + quoteYAML("apiVersion: batch/v1\nkind: Job\nmetadata: {name: r}\nspec: {template: {spec: {restartPolicy: Never}}}\n")), "migration_job.spec.template.spec.containers", "at least one container"},
		{"no image", withTarget(withJob("image: registry.example.com/aivo/ai-orchestrator:stable", "imagePullPolicy: Always")), "migration_job.spec.template.spec.containers[0].image", "required"},
		{"restart always", withTarget(withJob("restartPolicy: Never", "restartPolicy: Always")), "migration_job.spec.template.spec.restartPolicy", "Never or OnFailure"},
		{"no restart policy", withTarget(withJob("      restartPolicy: Never\n", "")), "migration_job.spec.template.spec.restartPolicy", "Never or OnFailure"},
		{"bad verification job", targetYAML("verification_job: |\n" + indent(strings.Replace(verifyJob, "kind: Job", "kind: Pod", 1))), "verification_job.kind", "want Job"},
		{"same job names", targetYAML("verification_job: |\n" + indent(strings.Replace(verifyJob, "name: reencrypt-verify", "name: reencrypt", 1))), "verification_job.metadata.name", "two names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rot, problems := Build("encryption", yamlDecode(tt.src), rotators.Deps{})
			if rot != nil {
				t.Fatalf("Build accepted:\n%s", tt.src)
			}
			i := slices.IndexFunc(problems, func(p rotators.Problem) bool {
				return p.Path == tt.wantPath && strings.Contains(p.Message, tt.wantMsg)
			})
			if i < 0 {
				t.Fatalf("want a problem at %q containing %q, got %v", tt.wantPath, tt.wantMsg, problems)
			}
		})
	}
}

func TestJobName(t *testing.T) {
	tests := []struct{ base, id, want string }{
		{"reencrypt", "R-ABCD2345", "reencrypt-r-abcd2345"},
		{strings.Repeat("r", 40), "R-ABCD2345", strings.Repeat("r", 40) + "-r-abcd2345"},
		{"reencrypt", "R_ABC.D", "reencrypt-r-abc-d-"},
		{strings.Repeat("a", 60), "R-ABCD2345", strings.Repeat("a", 52) + "-r-abcd2345"},
		{"reencrypt", strings.Repeat("X", 30), "reencrypt-xxxxxxxxxxx-"},
	}
	for _, tt := range tests {
		got := JobName(tt.base, tt.id)
		if !strings.HasPrefix(got, tt.want) || len(got) > maxJobName {
			t.Errorf("JobName(%q, %q) = %q, want prefix %q, at most %d chars", tt.base, tt.id, got, tt.want, maxJobName)
		}
		if again := JobName(tt.base, tt.id); again != got {
			t.Errorf("JobName is not deterministic: %q, %q", got, again)
		}
	}
	if JobName("r", "R-A.B") == JobName("r", "R-A_B") {
		t.Error("distinct request ids gave the same Job name")
	}
}
