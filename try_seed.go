package main

// try_seed.go is what the simulated platform of `rotary try` starts with:
// per target and environment, the deployments with ready pods, the
// ExternalSecrets, the Kubernetes Secrets and the first Secret Manager
// versions, holding made-up values of the right shape (a real key pair for
// the jwt kind).

import (
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/aivo-platform/rotary/rotators/gsm"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

// Settings of the simulated cluster.
const (
	// tryReplicas is the size of each simulated deployment.
	tryReplicas = 2
	// seedKeyBits is the size of the JWT key pair the simulation starts
	// with (the rotation makes its own, of the configured size).
	seedKeyBits = 2048
	// keyIDBytes makes a 16-hex-digit key id, as the jwt kind does.
	keyIDBytes = 8
	// Defaults of the kinds' settings the simulation seeds from.
	defaultEncryptionKeyName = "ENCRYPTION_KEY"
	defaultJWTSecret         = "jwt-keys"
	defaultJWTDeployment     = "auth-svc"
)

// trySeeds is what the simulated platform starts with: Kubernetes objects
// (each once, however many targets name it) and Secret Manager secrets
// with their first value.
type trySeeds struct {
	objs, ess []runtime.Object
	seen      map[string]bool
	gsm       []gsmSeed
}

type gsmSeed struct{ name, value string }

func newTrySeeds() *trySeeds { return &trySeeds{seen: map[string]bool{}} }

func (s *trySeeds) add(list *[]runtime.Object, key string, obj runtime.Object) {
	if !s.seen[key] {
		s.seen[key] = true
		*list = append(*list, obj)
	}
}

func (s *trySeeds) addSecretManager(name, value string) {
	if !s.seen["gsm/"+name] {
		s.seen["gsm/"+name] = true
		s.gsm = append(s.gsm, gsmSeed{name: name, value: value})
	}
}

func (s *trySeeds) deployment(ns, name string) {
	labels := map[string]string{"app": name}
	s.add(&s.objs, "deploy/"+ns+"/"+name, kubesim.NewDeployment(ns, name, tryReplicas, labels))
	for i := range tryReplicas {
		pod := kubesim.NewRunningPod(ns, name+"-sim-"+strconv.Itoa(i), labels)
		// Ready, as a replica of a finished rollout is (the jwt kind's
		// session invalidation runs in a ready pod).
		pod.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
		}
		s.add(&s.objs, "pod/"+ns+"/"+pod.Name, pod)
	}
}

func (s *trySeeds) secret(ns, name string, data map[string][]byte) {
	s.add(&s.objs, "secret/"+ns+"/"+name, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	})
}

func (s *trySeeds) externalSecret(ns, name string) {
	s.add(&s.ess, "es/"+ns+"/"+name, kubesim.NewExternalSecret(ns, name, "1h"))
}

// target seeds what one target names in one environment: its deployments
// with ready pods, its ExternalSecret, and per kind the secret it rotates,
// holding a made-up value of the right shape.
func (s *trySeeds) target(t tryTarget, env string) error {
	ns := tryExpand(t.Namespace, env)
	if ns == "" {
		return nil
	}
	for _, d := range t.Deployments {
		s.deployment(ns, tryExpand(d, env))
	}
	if es := tryExpand(t.ExternalSecret, env); es != "" {
		s.externalSecret(ns, es)
	}
	smName := ""
	if t.SecretManager.Project != "" && t.SecretManager.Secret != "" {
		smName = gsm.SecretName(tryExpand(t.SecretManager.Project, env), tryExpand(t.SecretManager.Secret, env))
	}
	switch t.Kind {
	case kindAPIKey:
		if smName != "" {
			s.addSecretManager(smName, "SIMULATED-"+t.Name+"-"+env+"-"+tryRandomHex(trySecretBytes))
		}
	case kindEncryption:
		key := cmp.Or(t.KeyName, defaultEncryptionKeyName)
		s.secret(ns, tryExpand(t.Secret, env), map[string][]byte{key: []byte(base64.StdEncoding.EncodeToString(tryRandomBytes(32)))})
	case kindJWT:
		return s.jwt(t, env, ns, smName)
	default:
		// A kind the simulation has no model of gets the objects its
		// settings name, holding a made-up value.
		if sec := tryExpand(t.Secret, env); sec != "" {
			s.secret(ns, sec, map[string][]byte{cmp.Or(t.KeyName, "value"): []byte("SIMULATED-" + tryRandomHex(trySecretBytes))})
		}
		if smName != "" {
			s.addSecretManager(smName, "SIMULATED-"+t.Name+"-"+env+"-"+tryRandomHex(trySecretBytes))
		}
	}
	return nil
}

// jwt seeds the jwt kind's Secret with a real key pair (the rotation reads
// the current public key to keep it as the old one), its deployment, and,
// with backend secret_manager, the Secret Manager secret holding the keys
// as a JSON object and the ExternalSecret that extracts it.
func (s *trySeeds) jwt(t tryTarget, env, ns, smName string) error {
	names := struct{ private, public, keyID string }{"JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "JWT_KEY_ID"}
	if k := t.Keys; k != nil {
		names.private, names.public, names.keyID = cmp.Or(k.Private, names.private), cmp.Or(k.Public, names.public), cmp.Or(k.KeyID, names.keyID)
	}
	key, err := rsa.GenerateKey(rand.Reader, seedKeyBits)
	if err != nil {
		return fmt.Errorf("generate a key pair: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode the private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encode the public key: %w", err)
	}
	data := map[string][]byte{
		names.private: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		names.public:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		names.keyID:   []byte(hex.EncodeToString(tryRandomBytes(keyIDBytes))),
	}
	s.deployment(ns, tryExpand(cmp.Or(t.Deployment, defaultJWTDeployment), env))
	s.secret(ns, tryExpand(cmp.Or(t.Secret, defaultJWTSecret), env), data)
	if t.Backend == "secret_manager" && smName != "" {
		obj := map[string]string{}
		for k, v := range data {
			obj[k] = string(v)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encode the keys: %w", err)
		}
		s.addSecretManager(smName, string(b))
		if es := tryExpand(t.SecretManager.ExternalSecret, env); es != "" {
			s.externalSecret(ns, es)
		}
	}
	return nil
}
