package main

// try_pacedwatch.go paces the simulated cluster of `rotary try`: the
// simulated controllers see each event some time after it happened, so a
// rollout visibly takes a few seconds.

import (
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

// tryPacedWatchReactor serves cluster-wide watches (the simulated
// controllers' view: rotary itself watches single objects in a namespace)
// with every event delayed, so each controller step takes that long.
func tryPacedWatchReactor(tracker k8stesting.ObjectTracker, delay time.Duration) k8stesting.WatchReactionFunc {
	return func(action k8stesting.Action) (bool, watch.Interface, error) {
		if action.GetNamespace() != "" {
			return false, nil, nil
		}
		var opts metav1.ListOptions
		if wa, ok := action.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := tracker.Watch(action.GetResource(), "", opts)
		if err != nil {
			return true, nil, err
		}
		return true, tryPaceWatch(w, delay), nil
	}
}

// tryPacedWatch passes a watch's events on, each delay after it arrived, in
// order. It reads its source at once into a queue: the fakes' watchers
// panic when their buffer is full.
type tryPacedWatch struct {
	in   watch.Interface
	out  chan watch.Event
	stop chan struct{}
	once sync.Once
}

func tryPaceWatch(in watch.Interface, delay time.Duration) *tryPacedWatch {
	p := &tryPacedWatch{in: in, out: make(chan watch.Event), stop: make(chan struct{})}
	go p.run(delay)
	return p
}

func (p *tryPacedWatch) Stop() {
	p.once.Do(func() {
		close(p.stop)
		p.in.Stop()
	})
}

func (p *tryPacedWatch) ResultChan() <-chan watch.Event { return p.out }

func (p *tryPacedWatch) run(delay time.Duration) {
	defer close(p.out)
	type pending struct {
		ev  watch.Event
		due time.Time
	}
	var queue []pending
	src := p.in.ResultChan()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for src != nil || len(queue) > 0 {
		var send chan<- watch.Event
		var next watch.Event
		var wake <-chan time.Time
		if len(queue) > 0 {
			if wait := time.Until(queue[0].due); wait > 0 {
				timer.Reset(wait)
				wake = timer.C
			} else {
				send, next = p.out, queue[0].ev
			}
		}
		select {
		case ev, ok := <-src:
			if !ok {
				src = nil
				continue
			}
			queue = append(queue, pending{ev: ev, due: time.Now().Add(delay)})
		case send <- next:
			queue = queue[1:]
		case <-wake:
		case <-p.stop:
			return
		}
	}
}
