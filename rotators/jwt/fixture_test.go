package jwt

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aivo-platform/rotary/rotators"
	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/gsm/gsmfake"
	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
	"github.com/aivo-platform/rotary/rotators/rotatorstest"
	"github.com/aivo-platform/rotary/rotators/secret"
)

const (
	testNS     = "aivo-prod"
	testSecret = "jwt-keys"
	testDep    = "auth-svc"
	testReqID  = "R-JWT0001"
	// testOldKID is the key id in use before the rotation.
	testOldKID = "a1b2c3d4e5f60718"
	// testOther is an unrelated key in the Secret, which must survive.
	testOther = "OTHER_SETTING"
	// testGSMSecret is the Secret Manager secret of the secret_manager backend.
	testGSMSecret = "projects/aivo-platform/secrets/aivo-prod-jwt-keys"
	// testTimeout bounds a whole test's calls; they finish as soon as the
	// sim has acted, so it only matters when a test is broken.
	testTimeout = 30 * time.Second
	// execOutput is what the simulated invalidation command prints: it
	// stands for output that may hold secrets.
	execOutput = "invalidated 1234 sessions; last=sess_SECRET-9f8e7d6c5b4a"
)

// ExternalSecrets in the namespace: jwt-keys (the secret_manager backend's),
// two ordinary ones and one whose refresh is disabled.
var testExternalSecrets = []string{"database-credentials", "external-services", testSecret}

const testStaticES = "static-config" // refreshInterval 0

// testKeyPool holds RSA keys made once for the whole test binary: making a
// 2048-bit key takes a third of a second under -race, and the keys are
// never modified. Index 0 is the key in use before every rotation.
var testKeyPool = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
	keys := make([]*rsa.PrivateKey, 6)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
})

func poolKeys(t *testing.T) []*rsa.PrivateKey {
	t.Helper()
	keys, err := testKeyPool()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// keySource hands out the pool's keys after the first, in order, shared by
// every rotation of one world, and remembers them (for leak scans).
type keySource struct {
	mu   sync.Mutex
	pool []*rsa.PrivateKey
	next int
	made []*rsa.PrivateKey
}

func (k *keySource) NewKey(bits int) (*rsa.PrivateKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if bits != 2048 {
		return nil, fmt.Errorf("test key source only has 2048-bit keys, asked for %d", bits)
	}
	k.next++
	if k.next >= len(k.pool) {
		return nil, errors.New("test key source ran out of keys")
	}
	key := k.pool[k.next]
	k.made = append(k.made, key)
	return key, nil
}

func (k *keySource) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.made)
}

// countingRand hands out distinct deterministic bytes (key ids).
type countingRand struct {
	mu sync.Mutex
	n  byte
}

func (r *countingRand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	for i := range p {
		p[i] = r.n*16 + byte(i)
	}
	return len(p), nil
}

// world is one cluster (and Secret Manager) holding the keys in use,
// shared by the rotations a test makes in it.
type world struct {
	t       *testing.T
	backend string
	cs      *fake.Clientset
	dyn     *dynamicfake.FakeDynamicClient
	sim     *kubesim.Sim
	kc      *kube.Client
	logs    *syncBuffer
	exec    *kubesim.ExecServer
	gsmSrv  *gsmfake.Server
	store   *gsm.Client
	keys    *keySource
	rand    *countingRand
	oldKey  *rsa.PrivateKey
	// original is the Secret's data before any rotation.
	original map[string]string

	mu        sync.Mutex
	execReply kubesim.ExecReply
	// clockRun is the run whose clock the sim and the client follow, so
	// ESO's refreshTime keeps up with the stamps a run's steps make.
	clockRun *rotatorstest.Run
}

// now is the tracked run's clock.
func (w *world) now() time.Time {
	w.mu.Lock()
	r := w.clockRun
	w.mu.Unlock()
	if r == nil {
		return rotatorstest.DefaultNow
	}
	return r.Now()
}

// track makes the world's clock follow r, and returns r.
func (w *world) track(r *rotatorstest.Run) *rotatorstest.Run {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.clockRun = r
	return r
}

func newWorld(t *testing.T, backend string) *world {
	t.Helper()
	pool := poolKeys(t)
	w := &world{t: t, backend: backend, logs: &syncBuffer{}, keys: &keySource{pool: pool}, rand: &countingRand{}, oldKey: pool[0]}
	w.execReply = kubesim.ExecReply{Stdout: []byte(execOutput)}
	w.original = map[string]string{
		DefaultPrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: pemRSAPrivateKey, Bytes: x509.MarshalPKCS1PrivateKey(w.oldKey)})),
		DefaultPublicKey:  string(mustPublicPEM(t, &w.oldKey.PublicKey)),
		DefaultKeyID:      testOldKID,
		testOther:         "keep-me",
	}
	data := map[string][]byte{}
	for k, v := range w.original {
		data[k] = []byte(v)
	}
	labels := map[string]string{"app": testDep}
	created := metav1.NewTime(rotatorstest.DefaultNow.Add(-time.Hour))
	w.cs = fake.NewSimpleClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testSecret}, Type: corev1.SecretTypeOpaque, Data: data},
		kubesim.NewDeployment(testNS, testDep, 2, labels),
		kubesim.NewReadyPod(testNS, "auth-svc-6b7c9-aaaaa", labels, created),
		kubesim.NewReadyPod(testNS, "auth-svc-6b7c9-bbbbb", labels, created),
	)
	ess := []runtime.Object{kubesim.NewExternalSecret(testNS, testStaticES, "0")}
	for _, n := range testExternalSecrets {
		ess = append(ess, kubesim.NewExternalSecret(testNS, n, "1h"))
	}
	w.dyn = kubesim.NewDynamicClient(ess...)

	var err error
	w.exec, err = kubesim.NewExecServer(func(kubesim.ExecRequest) kubesim.ExecReply {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.execReply
	}, kubesim.ExecServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.exec.Close() })

	now := w.now
	w.sim = kubesim.New(w.cs, w.dyn, kubesim.Options{Now: now, Staged: true})
	w.kc = kube.New(w.cs, w.dyn, kube.Options{
		Now: now, PollInterval: time.Millisecond, RESTConfig: w.exec.RESTConfig(),
		Log: slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if backend == BackendSecretManager {
		w.startSecretManager()
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.sim.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-w.sim.Done() })
	return w
}

// startSecretManager holds the keys as version 1 of the secret (with a
// non-string member, which must survive), and makes ESO extract the
// latest enabled version into the Secret.
func (w *world) startSecretManager() {
	t := w.t
	srv, err := gsmfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.CreateSecret(testGSMSecret); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t)
	w.store, err = gsm.Dial(ctx, srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.store.Close() })
	w.gsmSrv = srv
	obj := map[string]any{"REFRESH_SECONDS": 900}
	for k, v := range w.original {
		obj[k] = v
	}
	payload, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.AddVersion(ctx, testGSMSecret, secret.New(payload)); err != nil {
		t.Fatal(err)
	}
	w.sim.SetExternalSecretSource(testNS, testSecret, func(context.Context) (map[string][]byte, error) {
		payload, ok := w.latestPayload()
		if !ok {
			return nil, errors.New("no enabled version")
		}
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			return nil, errors.New("the payload is not a JSON object")
		}
		out := map[string][]byte{}
		for k, v := range m {
			if s, ok := v.(string); ok {
				out[k] = []byte(s)
				continue
			}
			b, _ := json.Marshal(v) // as ESO's extract does for non-strings
			out[k] = b
		}
		return out, nil
	})
}

// latestPayload is the payload of the highest enabled version.
func (w *world) latestPayload() ([]byte, bool) {
	vs := w.gsmSrv.Versions(testGSMSecret)
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].State == gsmfake.StateEnabled {
			return vs[i].Payload, true
		}
	}
	return nil, false
}

// latestKeys is the latest enabled version's string members.
func (w *world) latestKeys(t *testing.T) map[string]string {
	t.Helper()
	payload, ok := w.latestPayload()
	if !ok {
		t.Fatal("no enabled version")
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

func (w *world) setExecReply(r kubesim.ExecReply) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.execReply = r
}

func (w *world) secretData(t *testing.T, name string) map[string]string {
	t.Helper()
	s, err := w.cs.CoreV1().Secrets(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// setSecretData replaces a Secret's data, as a person with kubectl would.
func (w *world) setSecretData(t *testing.T, name string, data map[string]string) {
	t.Helper()
	s, err := w.cs.CoreV1().Secrets(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	if _, err := w.cs.CoreV1().Secrets(testNS).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// keysData is the Secret's data without the extra members the
// secret_manager backend's payload carries.
func (w *world) keysData(t *testing.T) map[string]string {
	t.Helper()
	d := w.secretData(t, testSecret)
	delete(d, "REFRESH_SECONDS")
	return d
}

func (w *world) generation(t *testing.T) int64 {
	t.Helper()
	d, err := w.cs.AppsV1().Deployments(testNS).Get(context.Background(), testDep, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Generation
}

func (w *world) forceSyncStamp(t *testing.T, name string) string {
	t.Helper()
	u, err := w.dyn.Resource(kube.ExternalSecretGVR(kube.ExternalSecretsV1)).Namespace(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.GetAnnotations()[kube.ForceSyncAnnotation]
}

// writes lists the writes rotary (not the sim's controllers) made: Secret
// and Deployment writes, ExternalSecret annotations, Secret Manager
// versions and exec calls.
func (w *world) writes() []string {
	var out []string
	for _, a := range w.cs.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
		default:
			continue
		}
		if a.GetSubresource() != "" {
			continue
		}
		name := ""
		switch a := a.(type) {
		case k8stesting.CreateAction:
			if o, ok := a.GetObject().(metav1.Object); ok {
				name = o.GetName()
			}
		case k8stesting.UpdateAction:
			if o, ok := a.GetObject().(metav1.Object); ok {
				name = o.GetName()
			}
		case k8stesting.PatchAction:
			name = a.GetName()
		}
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource+" "+name)
	}
	for _, a := range w.dyn.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "" {
			out = append(out, "patch externalsecrets "+a.(k8stesting.PatchAction).GetName())
		}
	}
	if w.gsmSrv != nil {
		out = append(out, fmt.Sprintf("%d versions", len(w.gsmSrv.Versions(testGSMSecret))))
	}
	out = append(out, fmt.Sprintf("%d execs", len(w.exec.Requests())))
	return out
}

// fixture is one rotation (request) in a world.
type fixture struct {
	*world
	rot  *Rotator
	spec rotators.Spec
	plan rotators.Plan
}

// targetYAML is the target's settings for the world's backend; extra lines
// are appended.
func (w *world) targetYAML(extra ...string) string {
	src := "namespace: aivo-{env}\n"
	if !slices.ContainsFunc(extra, func(e string) bool { return strings.HasPrefix(e, "key_bits:") }) {
		src += "key_bits: 2048\n"
	}
	if w.backend == BackendSecretManager {
		src += "backend: secret_manager\nsecret_manager:\n  project: aivo-platform\n  secret: aivo-{env}-jwt-keys\n  external_secret: jwt-keys\n"
	}
	for _, e := range extra {
		src += e + "\n"
	}
	return src
}

func (w *world) rotation(t *testing.T, reqID string, emergency bool, extra ...string) *fixture {
	t.Helper()
	f := &fixture{world: w, spec: rotators.Spec{RequestID: reqID, Target: "jwt", Env: "prod", Emergency: emergency}}
	src := w.targetYAML(extra...)
	var cfg Config
	if err := yamlDecode(src)(&cfg); err != nil {
		t.Fatal(err)
	}
	clients := Clients{Cluster: w.kc, Exec: w.kc, Rand: w.rand, NewKey: w.keys.NewKey}
	if w.store != nil {
		clients.Store = w.store
	}
	rot, problems := New(f.spec.Target, cfg, clients)
	if len(problems) > 0 {
		t.Fatalf("config problems: %v\n%s", problems, src)
	}
	f.rot = rot
	f.plan = rot.Plan(f.spec)
	return f
}

// rollbackRequest is `/rotate rollback` of f's request: its plan's
// rollback steps, run as their own request with f's facts.
func (f *fixture) rollbackRequest(t *testing.T, run *rotatorstest.Run) (rotators.Plan, *rotatorstest.Run) {
	t.Helper()
	spec := rotators.Spec{RequestID: f.spec.RequestID + "-RB", Target: f.spec.Target, Env: f.spec.Env, RollbackOf: f.spec.RequestID}
	rr := rotatorstest.New(spec)
	for k, v := range run.Facts() {
		rr.SetFact(k, v)
	}
	rr.SetNow(run.Now())
	return f.rot.Plan(spec), f.track(rr)
}

func (f *fixture) newRun() *rotatorstest.Run { return f.track(rotatorstest.New(f.spec)) }

// restarted is run after a process restart (memory-only secrets lost).
func (f *fixture) restarted(run *rotatorstest.Run) *rotatorstest.Run { return f.track(run.Restarted()) }

// step returns the plan's step called name (forward, rollback or follow-up).
func (f *fixture) step(t *testing.T, name string) rotators.Step {
	t.Helper()
	return findStep(t, f.plan, name)
}

func findStep(t *testing.T, p rotators.Plan, name string) rotators.Step {
	t.Helper()
	all := slices.Concat(p.Steps, p.Rollback)
	for _, fu := range p.FollowUps {
		all = append(all, fu.Steps...)
	}
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %q", name)
	return rotators.Step{}
}

func (f *fixture) run(t *testing.T, run *rotatorstest.Run, name string) error {
	t.Helper()
	return f.step(t, name).Run(ctxTimeout(t), run)
}

// mustRun runs the named steps in order and fails on an error.
func (f *fixture) mustRun(t *testing.T, run *rotatorstest.Run, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := f.run(t, run, n); err != nil {
			t.Fatalf("step %s: %v", n, err)
		}
	}
}

func stepNames(steps []rotators.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}

func (f *fixture) forward() []string { return stepNames(f.plan.Steps) }

// upTo is the forward steps up to and including name.
func (f *fixture) upTo(name string) []string {
	all := f.forward()
	i := slices.Index(all, name)
	if i < 0 {
		panic("no forward step " + name)
	}
	return all[:i+1]
}
func (f *fixture) rollback() []string { return stepNames(f.plan.Rollback) }
func (f *fixture) followUp() []string {
	if len(f.plan.FollowUps) == 0 {
		return nil
	}
	return stepNames(f.plan.FollowUps[0].Steps)
}

// --- tokens ---

// sign makes an RS256 token with kid in its header.
func sign(t *testing.T, k *rsa.PrivateKey, kid string) string {
	t.Helper()
	tok := gojwt.NewWithClaims(gojwt.SigningMethodRS256, gojwt.MapClaims{"sub": "user-1"})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verify checks token as the application does with the Secret's keys:
// JWT_PUBLIC_KEY for the current kid, JWT_PUBLIC_KEY_OLD for any other.
func (w *world) verify(t *testing.T, token string) error {
	t.Helper()
	data := w.secretData(t, testSecret)
	_, err := gojwt.Parse(token, func(tok *gojwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		key := data[DefaultPublicKeyOld]
		if kid == data[DefaultKeyID] {
			key = data[DefaultPublicKey]
		}
		if key == "" {
			return nil, fmt.Errorf("no public key for kid %q", kid)
		}
		return gojwt.ParseRSAPublicKeyFromPEM([]byte(key))
	}, gojwt.WithValidMethods([]string{gojwt.SigningMethodRS256.Alg()}))
	return err
}

// currentPrivate parses the Secret's signing key.
func (w *world) currentPrivate(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	data := w.secretData(t, testSecret)
	block, _ := pem.Decode([]byte(data[DefaultPrivateKey]))
	if block == nil || block.Type != pemPrivateKey {
		t.Fatalf("the Secret's private key is not a PEM %q block", pemPrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey), data[DefaultKeyID]
}

// --- helpers ---

func mustPublicPEM(t *testing.T, k *rsa.PublicKey) []byte {
	t.Helper()
	b, err := encodePublic(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustFingerprint(t *testing.T, k *rsa.PublicKey) string {
	t.Helper()
	fp, err := fingerprint(k)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// privateTexts are strings that must never appear anywhere visible: every
// private key's PEM in both encodings, and a line from the middle of each
// (a partial leak).
func (w *world) privateTexts() []string {
	keys := append([]*rsa.PrivateKey{w.oldKey}, w.keys.made...)
	var out []string
	for _, k := range keys {
		for _, p := range []string{
			string(pem.EncodeToMemory(&pem.Block{Type: pemRSAPrivateKey, Bytes: x509.MarshalPKCS1PrivateKey(k)})),
			mustPKCS8(k),
		} {
			lines := strings.Split(p, "\n")
			out = append(out, p, lines[len(lines)/2])
		}
		out = append(out, hex.EncodeToString(k.D.Bytes())[:32], k.D.String()[:32])
	}
	return append(out, execOutput, "sess_SECRET")
}

func mustPKCS8(k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}))
}

// yamlDecode decodes strictly, as the config loader does.
func yamlDecode(src string) func(any) error {
	return func(into any) error {
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		return dec.Decode(into)
	}
}

func ctxTimeout(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func equalMaps(a, b map[string]string) bool { return maps.Equal(a, b) }
