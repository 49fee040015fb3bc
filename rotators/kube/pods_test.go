package kube_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/aivo-platform/rotary/rotators/kube"
	"github.com/aivo-platform/rotary/rotators/kube/kubesim"
)

func TestReadyPod(t *testing.T) {
	older := metav1.NewTime(t0.Add(-time.Hour))
	newer := metav1.NewTime(t0)
	ready := func(name string, created metav1.Time) *corev1.Pod {
		return kubesim.NewReadyPod(ns, name, labels(), created)
	}
	pending := ready("auth-svc-pending", newer)
	pending.Status.Phase = corev1.PodPending
	terminating := ready("auth-svc-terminating", newer)
	terminating.DeletionTimestamp = &newer
	terminating.Finalizers = []string{"example.com/hold"} // the fake refuses a deletion timestamp without one
	unready := ready("auth-svc-unready", newer)
	unready.Status.Conditions[0].Status = corev1.ConditionFalse
	running := kubesim.NewRunningPod(ns, "auth-svc-running", labels()) // no Ready condition
	other := kubesim.NewReadyPod(ns, "worker-1", map[string]string{"app": "worker"}, newer)
	dep := kubesim.NewDeployment(ns, "auth-svc", 2, labels())
	noSelector := kubesim.NewDeployment(ns, "auth-svc", 2, labels())
	noSelector.Spec.Selector = &metav1.LabelSelector{}

	tests := []struct {
		name      string
		objs      []runtime.Object
		want      string
		wantNoPod bool
		wantErr   []string
	}{
		{name: "newest ready pod", objs: []runtime.Object{dep, ready("auth-svc-a", older), ready("auth-svc-c", newer), ready("auth-svc-b", newer), other}, want: "auth-svc-b"},
		{name: "skips pods that cannot take a command", objs: []runtime.Object{dep, pending, terminating, unready, running, ready("auth-svc-old", older)}, want: "auth-svc-old"},
		{
			name: "none ready", objs: []runtime.Object{dep, pending, terminating, unready, running, other}, wantNoPod: true,
			wantErr: []string{"deployment aivo-prod/auth-svc has 4 pods and none is ready", "auth-svc-pending (Pending)", "auth-svc-terminating (terminating)", "auth-svc-unready (not Ready)", "auth-svc-running (no Ready condition)"},
		},
		{name: "no pods", objs: []runtime.Object{dep, other}, wantNoPod: true, wantErr: []string{"has no pods matching its selector app=auth-svc"}},
		{name: "no deployment", objs: []runtime.Object{ready("auth-svc-a", newer)}, wantErr: []string{"deployment aivo-prod/auth-svc", "not found"}},
		{name: "empty selector", objs: []runtime.Object{noSelector, other}, wantErr: []string{"empty selector"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, kubesim.Options{}, kube.Options{}, false, tt.objs...)
			got, err := e.kc.ReadyPod(ctxTimeout(t, waitTimeout), ns, "auth-svc")
			if len(tt.wantErr) == 0 {
				if err != nil || got != tt.want {
					t.Fatalf("ReadyPod = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadyPod = %q, want an error", got)
			}
			if errors.Is(err, kube.ErrNoReadyPod) != tt.wantNoPod {
				t.Errorf("errors.Is(err, ErrNoReadyPod) = %v, want %v (%v)", !tt.wantNoPod, tt.wantNoPod, err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
