package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// Environment the suite reads; test/cluster/ci.sh (via start.sh's env
// file) sets them.
const (
	envKubeconfig = "ROTARY_E2E_KUBECONFIG"
	envExecDir    = "ROTARY_E2E_EXEC_DIR"
	envPostgres   = "ROTARY_TEST_POSTGRES_URL"
	envRedis      = "ROTARY_TEST_REDIS_SERVER"
)

// Named limits of the suite.
const (
	// scenarioTimeout bounds one scenario, rotary's retries and rollbacks
	// included; a hang fails the scenario instead of the whole run.
	scenarioTimeout = 4 * time.Minute
	// tokenLifetime is the rotary ServiceAccount token's lifetime: longer
	// than any run of the suite.
	tokenLifetime = 2 * time.Hour
	// buildTimeout bounds `go build` of the rotary binary.
	buildTimeout = 5 * time.Minute
)

// Names rotary's shipped RBAC (deploy/) and example config use.
const (
	rotaryNamespace      = "rotary-system"
	rotaryServiceAccount = "rotary"
	shippedRoleNamespace = "aivo-prod"
)

// suite is what every scenario shares: the built binary, an admin client
// of the cluster and the rotary ServiceAccount's kubeconfig.
type suite struct {
	bin string
	// restCfg and the clients act as the cluster's administrator (the test
	// itself and the ESO stand-in); rotary never uses them.
	restCfg *rest.Config
	cs      kubernetes.Interface
	dyn     dynamic.Interface
	// rotaryKubeconfig authenticates as rotary-system/rotary.
	rotaryKubeconfig string
	// rbacDocs are deploy/rbac.yaml's Role and RoleBinding, applied to
	// each scenario's namespace in place of aivo-prod.
	role    *rbacv1.Role
	binding *rbacv1.RoleBinding
	execDir string
}

// newSuite skips the test without a cluster; otherwise it builds rotary
// and prepares its identity in the cluster.
func newSuite(t *testing.T) *suite {
	t.Helper()
	kubeconfig := os.Getenv(envKubeconfig)
	if kubeconfig == "" {
		t.Skipf("%s is not set: the end-to-end suite needs the test control plane. Run `bash test/cluster/ci.sh` "+
			"(builds and starts it, runs this suite, stops it), or `bash test/cluster/start.sh DIR && source DIR/env` first", envKubeconfig)
	}
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	s := &suite{execDir: os.Getenv(envExecDir)}
	var err error
	if s.restCfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		t.Fatalf("%s=%s: %v", envKubeconfig, kubeconfig, err)
	}
	s.restCfg.QPS, s.restCfg.Burst = 100, 200
	if s.cs, err = kubernetes.NewForConfig(s.restCfg); err != nil {
		t.Fatal(err)
	}
	if s.dyn, err = dynamic.NewForConfig(s.restCfg); err != nil {
		t.Fatal(err)
	}
	s.bin = buildRotary(ctx, t)
	s.loadRBAC(t)
	s.applyIdentity(ctx, t)
	return s
}

// buildRotary compiles the module's main package, as shipped, into the
// test's temporary directory.
func buildRotary(ctx context.Context, t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "rotary")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build rotary: %v\n%s", err, out.String())
	}
	return bin
}

// repoFile reads a file of the repository by its path from the root.
func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs splits a multi-document manifest into unstructured objects.
func yamlDocs(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding manifest: %v", err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// loadRBAC reads deploy/rbac.yaml: exactly one Role and one RoleBinding,
// both in the namespace rotary acts on.
func (s *suite) loadRBAC(t *testing.T) {
	t.Helper()
	for _, u := range yamlDocs(t, repoFile(t, "deploy/rbac.yaml")) {
		raw, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		switch u.GetKind() {
		case "Role":
			s.role = &rbacv1.Role{}
			err = yaml.Unmarshal(raw, s.role)
		case "RoleBinding":
			s.binding = &rbacv1.RoleBinding{}
			err = yaml.Unmarshal(raw, s.binding)
		default:
			t.Fatalf("deploy/rbac.yaml: unexpected %s %s", u.GetKind(), u.GetName())
		}
		if err != nil {
			t.Fatal(err)
		}
		if u.GetNamespace() != shippedRoleNamespace {
			t.Fatalf("deploy/rbac.yaml: %s %s is in %q; the suite rebinds it from %q", u.GetKind(), u.GetName(), u.GetNamespace(), shippedRoleNamespace)
		}
	}
	if s.role == nil || s.binding == nil {
		t.Fatal("deploy/rbac.yaml: want one Role and one RoleBinding")
	}
}

// applyIdentity creates rotary's namespace and ServiceAccount from deploy/,
// mints a token for it with the TokenRequest API, and writes the
// kubeconfig rotary runs with.
func (s *suite) applyIdentity(ctx context.Context, t *testing.T) {
	t.Helper()
	for _, f := range []string{"deploy/namespace.yaml", "deploy/serviceaccount.yaml"} {
		for _, u := range yamlDocs(t, repoFile(t, f)) {
			raw, _ := u.MarshalJSON()
			var err error
			switch u.GetKind() {
			case "Namespace":
				var ns corev1.Namespace
				if err = yaml.Unmarshal(raw, &ns); err == nil {
					_, err = s.cs.CoreV1().Namespaces().Create(ctx, &ns, metav1.CreateOptions{})
				}
			case "ServiceAccount":
				var sa corev1.ServiceAccount
				if err = yaml.Unmarshal(raw, &sa); err == nil {
					_, err = s.cs.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, &sa, metav1.CreateOptions{})
				}
			default:
				t.Fatalf("%s: unexpected %s", f, u.GetKind())
			}
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("%s: %v", f, err)
			}
		}
	}
	expiry := int64(tokenLifetime / time.Second)
	tr, err := s.cs.CoreV1().ServiceAccounts(rotaryNamespace).CreateToken(ctx, rotaryServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", rotaryNamespace, rotaryServiceAccount, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: s.restCfg.Host, CertificateAuthority: s.restCfg.CAFile, CertificateAuthorityData: s.restCfg.CAData}
	kc.AuthInfos["rotary"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["rotary"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "rotary"}
	kc.CurrentContext = "rotary"
	s.rotaryKubeconfig = filepath.Join(t.TempDir(), "rotary.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, s.rotaryKubeconfig); err != nil {
		t.Fatal(err)
	}
}

// namespace creates a scenario's namespace with the shipped Role and
// RoleBinding moved into it, and deletes it when the test ends.
func (s *suite) namespace(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	ns := fmt.Sprintf("e2e-%s-%d", strings.ReplaceAll(strings.ToLower(name), "_", "-"), os.Getpid()%100000)
	if len(ns) > 63 {
		t.Fatalf("namespace name %q is longer than 63 characters", ns)
	}
	if _, err := s.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Background deletion: nothing waits for the namespace to go.
		_ = s.cs.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), ns, metav1.DeleteOptions{})
	})
	role := s.role.DeepCopy()
	role.Namespace = ns
	if _, err := s.cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("applying deploy/rbac.yaml's Role to %s: %v", ns, err)
	}
	binding := s.binding.DeepCopy()
	binding.Namespace = ns
	if _, err := s.cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("applying deploy/rbac.yaml's RoleBinding to %s: %v", ns, err)
	}
	return ns
}
