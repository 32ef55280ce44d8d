package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/stream"
)

// Source reads topics as a member of a consumer group (stream.Source).
// Read returns the records of one poll; a batch's Ack commits, for every
// partition, the offset after the newest record of that batch and of
// the batches read before it, so acknowledging in read order (the
// stream contract) never commits a record whose outputs are not stored.
// Offsets are committed only by Ack (no auto-commit): a rebalance or a
// crash replays what was read and not acknowledged, never skips it. A
// commit for a partition the group has since given to another member is
// left out; that member reads it again.
type Source struct {
	cl         *kgo.Client
	log        *slog.Logger
	maxRecords int

	mu     sync.Mutex
	owned  map[string]map[int32]bool // partitions assigned to this member
	next   map[string]map[int32]kgo.EpochOffset
	closed bool
}

// NewSource joins group on the brokers of c and reads topic from its
// committed offsets (from the start for a new group), at most maxRecords
// records a batch.
func NewSource(c config.KafkaConfig, group, topic string, maxRecords int, log *slog.Logger) (*Source, error) {
	s := &Source{log: log, maxRecords: maxRecords, owned: map[string]map[int32]bool{}, next: map[string]map[int32]kgo.EpochOffset{}}
	opts, err := clientOpts(c)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(group),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, c.SessionTimeout/3)),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		// Records of transactions that a producer aborted are not read.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.assign(m, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.assign(m, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { s.assign(m, false) }),
	)
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return s, nil
}

func (s *Source) assign(m map[string][]int32, owned bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range m {
		if s.owned[t] == nil {
			s.owned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			if owned {
				s.owned[t][p] = true
			} else {
				delete(s.owned[t], p)
				delete(s.next[t], p) // its reads are the next owner's now
			}
		}
	}
}

var _ stream.Source = (*Source)(nil)

// Read polls until records come or ctx is done.
func (s *Source) Read(ctx context.Context) (*stream.Batch, error) {
	for {
		// A poll that brings nothing for AckWait while the brokers cannot
		// be reached says so, for the stage's health; reading goes on.
		pctx, cancel := context.WithTimeout(ctx, AckWait)
		fetches := s.cl.PollRecords(pctx, s.maxRecords)
		cancel()
		if fetches.IsClientClosed() {
			return nil, stream.Permanent(errors.New("kafka: the consumer is closed"))
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := connOf(s.cl).last(); err != nil && refused(err) && fetches.NumRecords() == 0 {
			return nil, stream.Permanent(fmt.Errorf("kafka: the brokers refused furrow (check streams.kafka.sasl and the group's and topic's ACLs): %w", err))
		}
		if why := connOf(s.cl).why(); why != "" && pctx.Err() != nil && fetches.NumRecords() == 0 {
			return nil, fmt.Errorf("kafka: no records for %s, the brokers cannot be reached%s", AckWait, why)
		}
		var ferr error
		fetches.EachError(func(topic string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("kafka: reading %s/%d: %w", topic, p, err)
				if errors.Is(err, kerr.UnknownTopicOrPartition) {
					ferr = stream.Permanent(fmt.Errorf("kafka: topic %s does not exist on the brokers; furrow does not create topics: create it, or name another in streams.kafka.topics (%w)", topic, err))
				}
			}
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			if ferr != nil {
				return nil, ferr
			}
			continue
		}
		b := &stream.Batch{Records: make([][]byte, len(recs))}
		s.mu.Lock()
		for i, r := range recs {
			b.Records[i] = r.Value
			if s.next[r.Topic] == nil {
				s.next[r.Topic] = map[int32]kgo.EpochOffset{}
			}
			s.next[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
		commit := make(map[string]map[int32]kgo.EpochOffset, len(s.next))
		for t, ps := range s.next {
			commit[t] = maps.Clone(ps)
		}
		s.mu.Unlock()
		b.Ack = func(ctx context.Context) error { return s.commit(ctx, commit) }
		return b, nil
	}
}

// commit commits offsets, leaving out the partitions no longer owned.
func (s *Source) commit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	s.mu.Lock()
	for t, ps := range offsets {
		for p := range ps {
			if !s.owned[t][p] {
				delete(ps, p)
			}
		}
	}
	s.mu.Unlock()
	var cerr error
	s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = err
				}
			}
		}
	})
	switch {
	case cerr == nil:
		return nil
	case errors.Is(cerr, kerr.RebalanceInProgress), errors.Is(cerr, kerr.IllegalGeneration), errors.Is(cerr, kerr.UnknownMemberID), errors.Is(cerr, kerr.FencedInstanceID):
		// The group moved on: the partitions' next owner reads again
		// what this commit covered.
		s.log.Warn("kafka: offsets not committed: the group rebalanced; the records are read again", "err", cerr)
		return nil
	}
	return fmt.Errorf("kafka: committing offsets: %w", cerr)
}

// Close leaves the group; what was not acknowledged is read again.
func (s *Source) Close(context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if !closed {
		s.cl.Close()
	}
	return nil
}

// ConsumerOpts are the options of a consumer-group client on topics that
// commits offsets itself and holds rebalances back while a poll's records
// are being processed (until the caller calls AllowRebalance), so a
// partition never has two members working on it at once.
func ConsumerOpts(c config.KafkaConfig, group string, topics ...string) ([]kgo.Opt, error) {
	opts, err := clientOpts(c)
	if err != nil {
		return nil, err
	}
	return append(opts,
		kgo.ConsumerGroup(group),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, c.SessionTimeout/3)),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	), nil
}

// NewTransactSession joins group on topic as a consume-transform-produce
// member with transactions (exactly once into the output topics): each
// batch's outputs and its input offsets commit together, or not at all,
// and a rebalance or a failure aborts and rewinds to the committed
// offsets. txnID names the transactional producer: reused by the next
// start of the same process (its data directory), it fences an
// instance that was killed mid-transaction at once; a new id leaves that
// transaction to time out (TransactionTimeout), holding read_committed
// consumers back until then.
func NewTransactSession(c config.KafkaConfig, group, topic, txnID string) (*kgo.GroupTransactSession, error) {
	opts, err := clientOpts(c)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(TransactionTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(int32(min(int64(c.MaxRecordBytes)+64<<10, 1<<30))),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ConsumerGroup(group),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, c.SessionTimeout/3)),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return sess, nil
}

// TransactionTimeout bounds a transaction of furrow enrich: a batch's
// enrichment and production must end within it.
const TransactionTimeout = 30 * time.Second
