package kube_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/secret"
)

// Secret values used below; no error or log line may contain any of them.
const (
	privValue = "-----BEGIN PRIVATE KEY-----MIIEvQ-old-private"
	pubValue  = "-----BEGIN PUBLIC KEY-----MIIBIj-old-public"
	newValue  = "new-private-key-material-7d1f0c"
	reqID     = "R-7KQ2M9XA"
)

var secretValues = []string{privValue, pubValue, newValue}

// noLeak fails when s contains any test secret value.
func noLeak(t *testing.T, where, s string) {
	t.Helper()
	for _, v := range secretValues {
		if strings.Contains(s, v) {
			t.Errorf("%s contains a secret value: %s", where, s)
		}
	}
}

// errText is err's text, checked for leaks.
func errText(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	noLeak(t, "error", err.Error())
	return err.Error()
}

func jwtSecret() *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: "jwt-keys", ResourceVersion: "42",
			Labels:      map[string]string{"app": "auth-svc"},
			Annotations: map[string]string{"owner": "platform"},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"private.pem": []byte(privValue), "public.pem": []byte(pubValue)},
	}
}

func (e *env) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	s, err := e.cs.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// secretWrites counts create/update/patch actions on secrets.
func secretWrites(actions []k8stesting.Action) int {
	var n int
	for _, a := range actions {
		if a.GetResource().Resource == "secrets" && (a.GetVerb() == "create" || a.GetVerb() == "update" || a.GetVerb() == "patch") {
			n++
		}
	}
	return n
}

func dataString(d map[string][]byte) map[string]string {
	out := make(map[string]string, len(d))
	for k, v := range d {
		out[k] = string(v)
	}
	return out
}

func TestBackupName(t *testing.T) {
	long := strings.Repeat("a", 250)
	tests := []struct {
		name, src, id string
		want          string // "" when only validity is checked
	}{
		{name: "plain", src: "jwt-keys", id: reqID, want: "jwt-keys-backup-r-7kq2m9xa"},
		{name: "already lower", src: "jwt-keys", id: "r-abc", want: "jwt-keys-backup-r-abc"},
		{name: "dots are kept", src: "db.creds", id: "R-1.2", want: "db.creds-backup-r-1.2"},
		{name: "underscore sanitized", src: "jwt-keys", id: "R_1"},
		{name: "only invalid characters", src: "jwt-keys", id: "__"},
		{name: "long source name", src: long, id: reqID},
		{name: "long source name ending in a dot after truncation", src: strings.Repeat("a", 230) + "." + strings.Repeat("b", 30), id: "R_1"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kube.BackupName(tt.src, tt.id)
			if tt.want != "" && got != tt.want {
				t.Errorf("BackupName = %q, want %q", got, tt.want)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("BackupName = %q is not a valid Secret name: %v", got, errs)
			}
			if !strings.Contains(got, "-backup-") {
				t.Errorf("BackupName = %q lacks -backup-", got)
			}
			if again := kube.BackupName(tt.src, tt.id); again != got {
				t.Errorf("not deterministic: %q then %q", got, again)
			}
			if prev, dup := seen[got]; dup {
				t.Errorf("%q and %q map to the same name", prev, tt.name)
			}
			seen[got] = tt.name
		})
	}
	// IDs that sanitize alike stay apart (the hash of the original ID).
	if a, b := kube.BackupName("s", "R_1"), kube.BackupName("s", "R/1"); a == b {
		t.Errorf("R_1 and R/1 both map to %q", a)
	}
}

func TestBackupSecretCopiesExactly(t *testing.T) {
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false, jwtSecret())
	ctx := context.Background()
	e.clock.Set(t0)
	name, err := e.kc.BackupSecret(ctx, ns, "jwt-keys", reqID)
	if err != nil {
		t.Fatal(errText(t, err))
	}
	if name != "jwt-keys-backup-r-7kq2m9xa" {
		t.Fatalf("backup name %q", name)
	}
	b := e.secret(t, name)
	if !maps.Equal(dataString(b.Data), dataString(jwtSecret().Data)) {
		t.Error("backup data differs from the source")
	}
	if b.Type != corev1.SecretTypeOpaque {
		t.Errorf("type %q", b.Type)
	}
	wantLabels := map[string]string{kube.BackupOfLabel: "jwt-keys", kube.BackupRequestLabel: reqID}
	if !maps.Equal(b.Labels, wantLabels) {
		t.Errorf("labels %v, want %v (source labels must not be copied)", b.Labels, wantLabels)
	}
	wantAnn := map[string]string{kube.BackupSourceVersionAnnotation: "42", kube.BackupTimeAnnotation: "2026-03-04T05:06:07Z"}
	if !maps.Equal(b.Annotations, wantAnn) {
		t.Errorf("annotations %v, want %v", b.Annotations, wantAnn)
	}
	if b.Immutable == nil || !*b.Immutable {
		t.Error("backup is not immutable")
	}

	// A repeat after the source changed returns the same backup, unchanged.
	if err := e.kc.UpdateSecretData(ctx, ns, "jwt-keys", map[string]secret.Value{"private.pem": secret.FromString(newValue)}, nil); err != nil {
		t.Fatal(errText(t, err))
	}
	e.clock.Set(t0.Add(time.Hour))
	again, err := e.kc.BackupSecret(ctx, ns, "jwt-keys", reqID)
	if err != nil || again != name {
		t.Fatalf("repeat: %q, %v", again, errText(t, err))
	}
	b2 := e.secret(t, name)
	if !maps.Equal(dataString(b2.Data), dataString(jwtSecret().Data)) || !maps.Equal(b2.Annotations, wantAnn) {
		t.Error("repeat changed the backup")
	}
	noLeak(t, "log", e.logText())
}

func TestBackupSecretRefusals(t *testing.T) {
	foreign := func(labels map[string]string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "jwt-keys-backup-r-7kq2m9xa", Labels: labels},
			Data:       map[string][]byte{"x": []byte("someone else's")},
		}
	}
	tokenSecret := jwtSecret()
	tokenSecret.Name, tokenSecret.Type = "sa-token", corev1.SecretTypeServiceAccountToken
	tests := []struct {
		name      string
		objs      []runtime.Object
		src, id   string
		wantErr   []string
		wantIs    error
		notFound  bool
		preserved bool // the pre-existing backup-named Secret must be unchanged
	}{
		{
			name: "existing secret without labels", objs: []runtime.Object{jwtSecret(), foreign(nil)}, src: "jwt-keys", id: reqID,
			wantIs: kube.ErrForeignObject, wantErr: []string{ns + "/jwt-keys-backup-r-7kq2m9xa"}, preserved: true,
		},
		{
			// "r-7kq2m9xa" and "R-7KQ2M9XA" lowercase to the same name.
			name: "backup of another request with the same lowercased ID",
			objs: []runtime.Object{jwtSecret(), foreign(map[string]string{kube.BackupOfLabel: "jwt-keys", kube.BackupRequestLabel: "r-7kq2m9xa"})},
			src:  "jwt-keys", id: reqID, wantIs: kube.ErrForeignObject, preserved: true,
		},
		{
			name: "same request, other source",
			objs: []runtime.Object{jwtSecret(), foreign(map[string]string{kube.BackupOfLabel: "other", kube.BackupRequestLabel: reqID})},
			src:  "jwt-keys", id: reqID, wantIs: kube.ErrForeignObject, preserved: true,
		},
		{name: "missing source", src: "jwt-keys", id: reqID, notFound: true},
		{name: "empty request ID", objs: []runtime.Object{jwtSecret()}, src: "jwt-keys", id: "", wantErr: []string{"empty request ID"}},
		{name: "request ID not a label value", objs: []runtime.Object{jwtSecret()}, src: "jwt-keys", id: strings.Repeat("R", 64), wantErr: []string{"not a valid label value"}},
		{name: "service account token", objs: []runtime.Object{tokenSecret}, src: "sa-token", id: reqID, wantErr: []string{"kubernetes.io/service-account-token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, kubesim.Options{}, kube.Options{}, false, tt.objs...)
			_, err := e.kc.BackupSecret(context.Background(), ns, tt.src, tt.id)
			msg := errText(t, err)
			if err == nil {
				t.Fatal("want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if tt.notFound && !apierrors.IsNotFound(err) {
				t.Errorf("err = %v, want NotFound", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			if tt.preserved {
				if got := string(e.secret(t, "jwt-keys-backup-r-7kq2m9xa").Data["x"]); got != "someone else's" {
					t.Error("the existing Secret was overwritten")
				}
			}
			noLeak(t, "log", e.logText())
		})
	}
}

func TestSecretData(t *testing.T) {
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false, jwtSecret())
	got, err := e.kc.SecretData(context.Background(), ns, "jwt-keys")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got["private.pem"].Reveal()) != privValue || string(got["public.pem"].Reveal()) != pubValue {
		t.Errorf("got keys %v", slices.Sorted(maps.Keys(got)))
	}
	if _, ok := got["missing"]; ok {
		t.Error("a missing key is in the map")
	}
	// The values are copies: changing one does not change what the client holds.
	got["private.pem"].Reveal()[0] = 'X'
	if again, _ := e.kc.SecretData(context.Background(), ns, "jwt-keys"); string(again["private.pem"].Reveal()) != privValue {
		t.Error("SecretData returned shared bytes")
	}
	_, err = e.kc.SecretData(context.Background(), ns, "missing")
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), ns+"/missing") {
		t.Errorf("missing: err = %v", err)
	}
}

func TestUpdateSecretData(t *testing.T) {
	v := secret.FromString
	tests := []struct {
		name      string
		set       map[string]secret.Value
		remove    []string
		immutable bool
		want      map[string]string // nil: an error is expected
		wantErr   string
		wantWrite bool
	}{
		{
			name: "set a new key", set: map[string]secret.Value{"previous.pem": v(newValue)},
			want: map[string]string{"private.pem": privValue, "public.pem": pubValue, "previous.pem": newValue}, wantWrite: true,
		},
		{
			name: "overwrite a key", set: map[string]secret.Value{"private.pem": v(newValue)},
			want: map[string]string{"private.pem": newValue, "public.pem": pubValue}, wantWrite: true,
		},
		{
			name: "remove a key", remove: []string{"public.pem"},
			want: map[string]string{"private.pem": privValue}, wantWrite: true,
		},
		{
			name: "set and remove together", set: map[string]secret.Value{"private.pem": v(newValue)}, remove: []string{"public.pem"},
			want: map[string]string{"private.pem": newValue}, wantWrite: true,
		},
		{
			name: "no-op: same value, absent key removed", set: map[string]secret.Value{"private.pem": v(privValue)}, remove: []string{"absent"},
			want: map[string]string{"private.pem": privValue, "public.pem": pubValue},
		},
		{name: "no-op: nothing asked", want: map[string]string{"private.pem": privValue, "public.pem": pubValue}},
		{
			name: "key both set and removed", set: map[string]secret.Value{"private.pem": v(newValue)}, remove: []string{"private.pem"},
			wantErr: `key "private.pem" is both set and removed`,
		},
		{name: "empty value refused", set: map[string]secret.Value{"private.pem": {}}, wantErr: "empty value"},
		{name: "immutable secret refused", set: map[string]secret.Value{"private.pem": v(newValue)}, immutable: true, wantErr: "secret is immutable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := jwtSecret()
			src.Immutable = &tt.immutable
			e := newEnv(t, kubesim.Options{}, kube.Options{}, false, src)
			e.cs.ClearActions()
			err := e.kc.UpdateSecretData(context.Background(), ns, "jwt-keys", tt.set, tt.remove)
			msg := errText(t, err)
			if tt.wantErr != "" {
				if !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, ns+"/jwt-keys") {
					t.Errorf("err = %q, want %q naming the secret", msg, tt.wantErr)
				}
				if n := secretWrites(e.cs.Actions()); n != 0 {
					t.Errorf("refused but wrote %d times", n)
				}
				if tt.immutable && !errors.Is(err, kube.ErrImmutableSecret) {
					t.Errorf("err = %v, want ErrImmutableSecret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(msg)
			}
			if got := dataString(e.secret(t, "jwt-keys").Data); !maps.Equal(got, tt.want) {
				t.Errorf("data keys %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.want)))
			}
			if n := secretWrites(e.cs.Actions()); (n == 1) != tt.wantWrite || n > 1 {
				t.Errorf("%d writes, want write=%v", n, tt.wantWrite)
			}
			noLeak(t, "log", e.logText())
		})
	}
}

// conflictOnUpdate makes the first n secret updates fail with Conflict and
// counts all update attempts.
func conflictOnUpdate(e *env, n int32) *atomic.Int32 {
	var calls atomic.Int32
	e.cs.PrependReactor("update", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) <= n {
			return true, nil, apierrors.NewConflict(corev1.Resource("secrets"), "jwt-keys", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	return &calls
}

func TestUpdateSecretDataRetriesConflict(t *testing.T) {
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false, jwtSecret())
	calls := conflictOnUpdate(e, 1)
	// A concurrent writer adds a key between our first read and our retry;
	// the retry must re-read and keep it.
	var gets atomic.Int32
	e.cs.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if gets.Add(1) == 2 {
			s := jwtSecret()
			s.Data["other-writer"] = []byte("x")
			if err := e.cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("secrets"), s, ns); err != nil {
				t.Error(err)
			}
		}
		return false, nil, nil
	})
	err := e.kc.UpdateSecretData(context.Background(), ns, "jwt-keys", map[string]secret.Value{"private.pem": secret.FromString(newValue)}, nil)
	if err != nil {
		t.Fatal(errText(t, err))
	}
	if calls.Load() != 2 || gets.Load() != 2 {
		t.Errorf("updates %d, gets %d; want 2 and 2 (re-read before retry)", calls.Load(), gets.Load())
	}
	want := map[string]string{"private.pem": newValue, "public.pem": pubValue, "other-writer": "x"}
	if got := dataString(e.secret(t, "jwt-keys").Data); !maps.Equal(got, want) {
		t.Errorf("data keys %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

func TestUpdateSecretDataGivesUpOnPersistentConflict(t *testing.T) {
	e := newEnv(t, kubesim.Options{}, kube.Options{}, false, jwtSecret())
	calls := conflictOnUpdate(e, 1000)
	err := e.kc.UpdateSecretData(context.Background(), ns, "jwt-keys", map[string]secret.Value{"private.pem": secret.FromString(newValue)}, nil)
	msg := errText(t, err)
	if !apierrors.IsConflict(err) || !strings.Contains(msg, ns+"/jwt-keys") {
		t.Errorf("err = %v, want a wrapped Conflict naming the secret", err)
	}
	if calls.Load() < 2 {
		t.Errorf("tried %d times, want retries", calls.Load())
	}
	noLeak(t, "log", e.logText())
}

func TestRestoreSecret(t *testing.T) {
	ctx := context.Background()
	// backup returns an env whose jwt-keys was backed up and then changed.
	backedUp := func(t *testing.T, objs ...runtime.Object) (*env, string) {
		t.Helper()
		e := newEnv(t, kubesim.Options{}, kube.Options{}, false, append([]runtime.Object{jwtSecret()}, objs...)...)
		name, err := e.kc.BackupSecret(ctx, ns, "jwt-keys", reqID)
		if err != nil {
			t.Fatal(errText(t, err))
		}
		err = e.kc.UpdateSecretData(ctx, ns, "jwt-keys",
			map[string]secret.Value{"private.pem": secret.FromString(newValue), "previous.pem": secret.FromString(privValue)},
			[]string{"public.pem"})
		if err != nil {
			t.Fatal(errText(t, err))
		}
		return e, name
	}

	t.Run("restores exactly, then is a no-op", func(t *testing.T) {
		e, backup := backedUp(t)
		e.cs.ClearActions()
		if err := e.kc.RestoreSecret(ctx, ns, "jwt-keys", backup); err != nil {
			t.Fatal(errText(t, err))
		}
		if got := dataString(e.secret(t, "jwt-keys").Data); !maps.Equal(got, dataString(jwtSecret().Data)) {
			t.Errorf("restored keys %v, want exactly the backup's", slices.Sorted(maps.Keys(got)))
		}
		if n := secretWrites(e.cs.Actions()); n != 1 {
			t.Errorf("%d writes, want 1", n)
		}
		e.cs.ClearActions()
		if err := e.kc.RestoreSecret(ctx, ns, "jwt-keys", backup); err != nil {
			t.Fatal(errText(t, err))
		}
		if n := secretWrites(e.cs.Actions()); n != 0 {
			t.Errorf("repeat wrote %d times", n)
		}
		noLeak(t, "log", e.logText())
	})

	otherBackup := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-backup-r-1", Labels: map[string]string{kube.BackupOfLabel: "db", kube.BackupRequestLabel: "R-1"}},
		Data:       map[string][]byte{"password": []byte(newValue)},
	}
	tlsBackup := otherBackup.DeepCopy()
	tlsBackup.Name, tlsBackup.Labels[kube.BackupOfLabel], tlsBackup.Type = "tls-backup", "jwt-keys", corev1.SecretTypeTLS
	tests := []struct {
		name, backup string
		objs         []runtime.Object
		wantErr      string
		notFound     bool
	}{
		{name: "backup of another secret", backup: "db-backup-r-1", objs: []runtime.Object{otherBackup}, wantErr: `is not its backup`},
		{name: "type mismatch", backup: "tls-backup", objs: []runtime.Object{tlsBackup}, wantErr: "differs from backup"},
		{name: "missing backup", backup: "nope", notFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := backedUp(t, tt.objs...)
			before := dataString(e.secret(t, "jwt-keys").Data)
			e.cs.ClearActions()
			err := e.kc.RestoreSecret(ctx, ns, "jwt-keys", tt.backup)
			msg := errText(t, err)
			if err == nil || !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, ns+"/jwt-keys") {
				t.Errorf("err = %q, want %q naming the secret", msg, tt.wantErr)
			}
			if tt.notFound && !apierrors.IsNotFound(err) {
				t.Errorf("err = %v, want NotFound", err)
			}
			if n := secretWrites(e.cs.Actions()); n != 0 {
				t.Errorf("refused but wrote %d times", n)
			}
			if !maps.Equal(dataString(e.secret(t, "jwt-keys").Data), before) {
				t.Error("secret changed")
			}
		})
	}
}
