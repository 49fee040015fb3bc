package main

// try_config.go is the config as `rotary try` reads and runs it: the
// bundled example, the targets as the simulation reads them, and the
// adjusted copy the bot loads (unavailable targets out, provider APIs
// pointed at the fakes, jwt waits shortened, the state file set).

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aivo-platform/rotary/bot/console"
	"github.com/aivo-platform/rotary/rotators/apikey"
)

// bundledConfig is examples/aivo.yaml, built in so that `rotary try` runs
// from any directory. (go:embed needs a package-level variable; it is only
// read.)
//
//go:embed examples/aivo.yaml
var bundledConfig []byte

const (
	bundledConfigName = "examples/aivo.yaml (bundled)"
	// tryTokenLifetime replaces a longer jwt token_lifetime, which an
	// ordinary rotation waits out before it reports its outcome.
	tryTokenLifetime = 30 * time.Second
)

// tryConfigSource returns the config's text and a name for messages. The
// config is checked as it is first, so its own problems are reported
// against it, not against try's adjusted copy.
func tryConfigSource(path, work string) ([]byte, string, error) {
	if path == "" {
		copyPath := filepath.Join(work, "aivo.yaml")
		if err := os.WriteFile(copyPath, bundledConfig, 0o600); err != nil {
			return nil, "", fmt.Errorf("try: write the bundled config: %w", err)
		}
		if _, err := loadValid(copyPath); err != nil {
			return nil, "", fmt.Errorf("try: the bundled %s is not valid (this build of rotary is broken): %w", bundledConfigName, err)
		}
		return bundledConfig, bundledConfigName, nil
	}
	if _, err := loadValid(path); err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read config: %w", err)
	}
	return b, path, nil
}

// tryTarget is what the simulation reads of a target: the keys the kinds
// share, decoded loosely (the kinds validate them; unknown keys are theirs).
type tryTarget struct {
	Name          string
	Envs          []string
	Kind          string `yaml:"kind"`
	Namespace     string `yaml:"namespace"`
	SecretManager struct {
		Project        string `yaml:"project"`
		Secret         string `yaml:"secret"`
		ExternalSecret string `yaml:"external_secret"`
	} `yaml:"secret_manager"`
	ExternalSecret string   `yaml:"external_secret"`
	Deployments    []string `yaml:"deployments"`
	// Deployment is the jwt kind's one deployment.
	Deployment string `yaml:"deployment"`
	Provider   string `yaml:"provider"`
	OpenAI     *struct {
		ProjectID   string `yaml:"project_id"`
		AdminKeyEnv string `yaml:"admin_key_env"`
	} `yaml:"openai"`
	SendGrid *struct {
		Scopes      []string `yaml:"scopes"`
		AdminKeyEnv string   `yaml:"admin_key_env"`
	} `yaml:"sendgrid"`
	Secret  string `yaml:"secret"`
	KeyName string `yaml:"key_name"`
	// Keys, Backend and TokenLifetime are the jwt kind's.
	Keys *struct {
		Private   string `yaml:"private"`
		Public    string `yaml:"public"`
		PublicOld string `yaml:"public_old"`
		KeyID     string `yaml:"key_id"`
	} `yaml:"keys"`
	Backend       string               `yaml:"backend"`
	TokenLifetime string               `yaml:"token_lifetime"`
	Approvers     map[string]yaml.Node `yaml:"approvers"`
}

// tryExpand replaces {env} as the kinds do.
func tryExpand(s, env string) string { return strings.ReplaceAll(s, apikey.EnvPlaceholder, env) }

// readTryTargets parses the config text and reads its targets.
func readTryTargets(raw []byte) (*yaml.Node, []tryTarget, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	root := yamlRoot(&doc)
	if root == nil {
		return nil, nil, errors.New("the file is not a mapping of settings")
	}
	tm := yamlDeref(yamlValue(root, yamlKeyTargets))
	if tm == nil || tm.Kind != yaml.MappingNode {
		return nil, nil, errors.New("no targets: section")
	}
	var out []tryTarget
	for i := 0; i+1 < len(tm.Content); i += 2 {
		var t tryTarget
		if err := yamlDeref(tm.Content[i+1]).Decode(&t); err != nil {
			return nil, nil, fmt.Errorf("targets.%s: %w", tm.Content[i].Value, err)
		}
		t.Name = tm.Content[i].Value
		for env := range t.Approvers {
			t.Envs = append(t.Envs, env)
		}
		slices.Sort(t.Envs)
		out = append(out, t)
	}
	return &doc, out, nil
}

// Keys of the config file that try reads or rewrites (its own copies, so
// that try follows the file format, not the loader's internals).
const (
	yamlKeyTargets   = "targets"
	yamlKeyStatePath = "state_path"
	yamlKeyListen    = "listen"
)

// yamlDeref follows an alias to its anchored node.
func yamlDeref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func yamlRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	return doc
}

// yamlValue returns the value of key in mapping m, or nil.
func yamlValue(m *yaml.Node, key string) *yaml.Node {
	m = yamlDeref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// yamlSetString sets key in mapping m to a string.
func yamlSetString(m *yaml.Node, key, value string) {
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// yamlDelete removes key from mapping m.
func yamlDelete(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}

// tryConfig writes the config as try runs it (unavailable targets out,
// provider APIs pointed at the fakes, the state file set) and loads it the
// way serve does.
func tryConfig(doc *yaml.Node, work, statePath string, unavailable []console.Unavailable, apiBase map[string]string, source string) (*Config, error) {
	root := yamlRoot(doc)
	shortenWaits(yamlDeref(yamlValue(root, yamlKeyTargets)))
	yamlSetString(root, yamlKeyStatePath, statePath)
	yamlSetString(root, yamlKeyListen, "127.0.0.1:0") // unused: the bot gets a listener
	tm := yamlDeref(yamlValue(root, yamlKeyTargets))
	for _, u := range unavailable {
		yamlDelete(tm, u.Target)
	}
	if len(tm.Content) == 0 {
		return nil, fmt.Errorf("try: no target of %s can run here: %s", source, tryDescribeUnavailable(unavailable))
	}
	for name, base := range apiBase {
		t := yamlDeref(yamlValue(tm, name))
		for _, section := range []string{apikey.ProviderOpenAI, apikey.ProviderSendGrid} {
			if s := yamlDeref(yamlValue(t, section)); s != nil && s.Kind == yaml.MappingNode {
				yamlSetString(s, "api_base", base)
			}
		}
	}
	text, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("try: write the adjusted config: %w", err)
	}
	path := filepath.Join(work, "rotary-try.yaml")
	if err := os.WriteFile(path, text, 0o600); err != nil {
		return nil, fmt.Errorf("try: write the adjusted config: %w", err)
	}
	cfg, err := loadValid(path)
	if err != nil {
		return nil, fmt.Errorf("try: the config adjusted for try (from %s) is not valid; this is a bug in rotary try: %w", source, err)
	}
	return cfg, nil
}

// shortenWaits caps the jwt kind's token_lifetime, which an ordinary
// rotation waits out before its outcome, at tryTokenLifetime, so the
// rotation finishes while someone watches. (The follow-up that removes the
// old public key keeps its grace period; its "Run now" button runs it.)
func shortenWaits(targets *yaml.Node) {
	if targets == nil || targets.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(targets.Content); i += 2 {
		t := yamlDeref(targets.Content[i+1])
		if k := yamlDeref(yamlValue(t, "kind")); t == nil || t.Kind != yaml.MappingNode || k == nil || k.Value != kindJWT {
			continue
		}
		if v := yamlDeref(yamlValue(t, "token_lifetime")); v != nil {
			if d, err := time.ParseDuration(v.Value); err == nil && d <= tryTokenLifetime {
				continue
			}
		}
		yamlSetString(t, "token_lifetime", tryTokenLifetime.String())
	}
}

func tryDescribeUnavailable(us []console.Unavailable) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.Target + " (" + u.Reason + ")"
	}
	return strings.Join(parts, "; ")
}
