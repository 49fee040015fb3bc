package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxLogLineBytes bounds the memory one log line may take; the rest of a
// longer line is skipped (its first maxLogLineBytes are still matched).
const maxLogLineBytes = 64 << 10

// LogScan is the result of ScanLogs: counts only, never content, because
// application logs can contain secrets.
type LogScan struct {
	Pods    int            // running pods whose logs were read
	Lines   int            // lines read across them
	Matches map[string]int // pod name → lines matching the pattern (0 included)
}

// ScanLogs reads the logs written since `since` by the containers of the
// deployment's running pods (found through the deployment's own label
// selector, like `kubectl logs -l`) and counts the lines matching pattern per
// pod. It never returns or logs log content. Pods that disappear during the
// scan (a rollout in progress) are skipped.
func (c *Client) ScanLogs(ctx context.Context, ns, deployment string, since time.Time, pattern *regexp.Regexp) (LogScan, error) {
	what := "deployment " + ns + "/" + deployment
	if pattern == nil {
		return LogScan{}, fmt.Errorf("kube: scanning logs of %s: nil pattern", what)
	}
	dep, err := c.cs.AppsV1().Deployments(ns).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return LogScan{}, fmt.Errorf("kube: scanning logs of %s: %w", what, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return LogScan{}, fmt.Errorf("kube: scanning logs of %s: selector: %w", what, err)
	}
	if sel.Empty() {
		// An empty selector matches every pod in the namespace.
		return LogScan{}, fmt.Errorf("kube: scanning logs of %s: deployment has an empty selector", what)
	}
	pods, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return LogScan{}, fmt.Errorf("kube: scanning logs of %s: listing pods: %w", what, err)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })

	scan := LogScan{Matches: make(map[string]int)}
	sinceTime := metav1.NewTime(since)
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			continue
		}
		lines, matches, err := c.scanPod(ctx, pod, &sinceTime, pattern)
		if apierrors.IsNotFound(err) {
			c.log.InfoContext(ctx, "kube: pod went away during log scan", "pod", ns+"/"+pod.Name)
			continue
		}
		if err != nil {
			return LogScan{}, fmt.Errorf("kube: scanning logs of %s: pod %s: %w", what, pod.Name, err)
		}
		scan.Pods++
		scan.Lines += lines
		scan.Matches[pod.Name] = matches
	}
	return scan, nil
}

// scanPod counts lines over the pod's started containers. A container still
// waiting to (re)start has no current log to read.
func (c *Client) scanPod(ctx context.Context, pod *corev1.Pod, since *metav1.Time, pattern *regexp.Regexp) (lines, matches int, err error) {
	started := make(map[string]bool, len(pod.Status.ContainerStatuses))
	for _, st := range pod.Status.ContainerStatuses {
		started[st.Name] = st.State.Running != nil || st.State.Terminated != nil
	}
	for _, ctr := range pod.Spec.Containers {
		if !started[ctr.Name] {
			continue
		}
		l, m, err := c.scanContainer(ctx, pod, ctr.Name, since, pattern)
		if err != nil {
			return 0, 0, fmt.Errorf("container %s: %w", ctr.Name, err)
		}
		lines += l
		matches += m
	}
	return lines, matches, nil
}

func (c *Client) scanContainer(ctx context.Context, pod *corev1.Pod, container string, since *metav1.Time, pattern *regexp.Regexp) (lines, matches int, err error) {
	rc, err := c.cs.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: container, SinceTime: since}).Stream(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("opening log stream: %w", err)
	}
	defer rc.Close()
	return countLines(rc, pattern)
}

// countLines counts the lines of r and those matching pattern (without their
// line terminator). A line longer than maxLogLineBytes is matched on its first
// maxLogLineBytes and counted once. The error never carries content.
func countLines(r io.Reader, pattern *regexp.Regexp) (lines, matches int, err error) {
	br := bufio.NewReaderSize(r, maxLogLineBytes)
	for {
		line, rerr := br.ReadSlice('\n')
		if len(line) > 0 {
			lines++
			if pattern.Match(bytes.TrimRight(line, "\r\n")) {
				matches++
			}
			// Skip the remainder of an over-long line.
			for errors.Is(rerr, bufio.ErrBufferFull) {
				_, rerr = br.ReadSlice('\n')
			}
		}
		switch {
		case errors.Is(rerr, io.EOF):
			return lines, matches, nil
		case rerr != nil:
			return lines, matches, fmt.Errorf("reading log stream: %w", rerr)
		}
	}
}
