package kafka

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// LagCollector reports, at each scrape, how many records each partition
// holds after a consumer group's committed offset, as the brokers tell
// (furrow_kafka_consumer_lag{group,topic,partition}); a scrape waits at
// most LagTimeout for them, and reports nothing it could not learn.
type LagCollector struct {
	adm    *kadm.Client
	groups []string
	desc   *prometheus.Desc
}

// LagTimeout bounds the brokers' answer to one scrape.
const LagTimeout = 2 * time.Second

// NewLagCollector asks the brokers cl reaches about groups.
func NewLagCollector(cl *kgo.Client, groups ...string) *LagCollector {
	return &LagCollector{adm: kadm.NewClient(cl), groups: groups, desc: prometheus.NewDesc("furrow_kafka_consumer_lag",
		"Records in a partition after the consumer group's committed offset (-1: unknown).", []string{"group", "topic", "partition"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), LagTimeout)
	defer cancel()
	lags, err := c.adm.Lag(ctx, c.groups...)
	if err != nil {
		return
	}
	for _, g := range lags {
		for topic, parts := range g.Lag {
			for p, l := range parts {
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(l.Lag), g.Group, topic, strconv.Itoa(int(p)))
			}
		}
	}
}

// Client is the Source's client, for its lag (NewLagCollector).
func (s *Source) Client() *kgo.Client { return s.cl }
