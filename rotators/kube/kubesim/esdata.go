package kubesim

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// esReasonSyncError is ESO's Ready=False reason when fetching fails.
const esReasonSyncError = "SecretSyncedError"

// ExternalSecretSource returns the data ESO would fetch from the provider
// for one ExternalSecret (e.g. a Secret Manager version's JSON object,
// extracted into keys). An error is reported the way ESO reports a provider
// failure: Ready=False, reason SecretSyncedError, with the error's text as
// the message (so it must not hold secret data).
type ExternalSecretSource func(ctx context.Context) (map[string][]byte, error)

// SetExternalSecretSource makes every following sync of ExternalSecret
// ns/name write src's data to its target Secret (spec.target.name, else the
// ExternalSecret's name), creating it when missing and replacing its data
// entirely, as ESO's default creationPolicy Owner does. Without a source
// the sim only updates the ExternalSecret's status and never touches a
// Secret. A nil src removes the source.
func (s *Sim) SetExternalSecretSource(ns, name string, src ExternalSecretSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := objKey{ns, name}
	if src == nil {
		delete(s.esSources, k)
		return
	}
	if s.esSources == nil {
		s.esSources = make(map[objKey]ExternalSecretSource)
	}
	s.esSources[k] = src
}

func (s *Sim) esSource(ns, name string) ExternalSecretSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.esSources[objKey{ns, name}]
}

// syncTarget fetches src's data and writes it to es's target Secret.
func (s *Sim) syncTarget(ctx context.Context, es *unstructured.Unstructured, src ExternalSecretSource) error {
	data, err := src(ctx)
	if err != nil {
		return err
	}
	target, _, _ := unstructured.NestedString(es.Object, "spec", "target", "name")
	if target == "" {
		target = es.GetName()
	}
	secrets := s.cs.CoreV1().Secrets(es.GetNamespace())
	cur, err := secrets.Get(ctx, target, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: es.GetNamespace(), Name: target},
			Type:       corev1.SecretTypeOpaque,
			Data:       maps.Clone(data),
		}
		if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("creating target secret %s: %w", target, err)
		}
	case err != nil:
		return fmt.Errorf("reading target secret %s: %w", target, err)
	default:
		cur.Data = maps.Clone(data)
		if _, err := secrets.Update(ctx, cur, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("updating target secret %s: %w", target, err)
		}
	}
	s.log.DebugContext(ctx, "kubesim: externalsecret target written", "externalsecret", es.GetNamespace()+"/"+es.GetName(), "secret", target, "keys", len(data))
	return nil
}
