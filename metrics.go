package main

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aivo-platform/rotary/approvals/boltstore"
)

// metricsScrapeTimeout bounds the store reads a scrape makes.
const metricsScrapeTimeout = 2 * time.Second

// metrics holds rotary's Prometheus collectors on a private registry (no
// globals). Labels are target and step names from config, never values.
type metrics struct {
	reg          *prometheus.Registry
	stepDuration *prometheus.HistogramVec
	stepFailures *prometheus.CounterVec
	httpRequests *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rotary_step_duration_seconds",
			Help:    "Duration of rotation step attempts.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900},
		}, []string{"target", "step", "result"}),
		stepFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotary_step_failures_total",
			Help: "Failed rotation step attempts.",
		}, []string{"target", "step"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotary_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.stepDuration, m.stepFailures, m.httpRequests,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// StepFinished implements executor.Observer.
func (m *metrics) StepFinished(target, step string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
		m.stepFailures.WithLabelValues(target, step).Inc()
	}
	m.stepDuration.WithLabelValues(target, step, result).Observe(d.Seconds())
}

// storeStats is what the scrape reads from the store.
type storeStats interface {
	Stats(ctx context.Context) (boltstore.Stats, error)
}

// handler serves /metrics, reading request and outbox gauges at scrape time.
func (m *metrics) handler(st storeStats) http.Handler {
	m.reg.MustRegister(&stateCollector{st: st})
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	requestsDesc = prometheus.NewDesc("rotary_requests", "Open rotation requests by state.", []string{"state"}, nil)
	outboxDesc   = prometheus.NewDesc("rotary_outbox_depth", "Slack notices waiting for delivery.", nil, nil)
)

type stateCollector struct{ st storeStats }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- requestsDesc; ch <- outboxDesc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsScrapeTimeout)
	defer cancel()
	st, err := c.st.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(requestsDesc, err)
		return
	}
	for state, n := range st.Open {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.GaugeValue, float64(n), string(state))
	}
	ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(st.OutboxDepth))
}

// instrument counts requests by route pattern and status code.
func (m *metrics) instrument(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(rec, r)
		_, pattern := mux.Handler(r)
		if pattern == "" {
			pattern = "unmatched"
		}
		m.httpRequests.WithLabelValues(pattern, strconv.Itoa(rec.code)).Inc()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }
