package mailserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/metrics"
)

// Delivery states of a queue row, as the queue stores them.
const (
	StateQueued   = "queued"
	StateSending  = "sending"
	StateSent     = "sent"
	StateDeferred = "deferred"
	StateFailed   = "failed"
)

// Delivery modes.
const (
	ModeOutbox    = "outbox"
	ModeSmarthost = "smarthost"
	ModeMX        = "mx"
)

// OutboundRcpt is one recipient row of a claimed batch.
type OutboundRcpt struct {
	ID       int64
	Addr     string
	Token    string // VERP token of the row
	Attempts int    // attempts made before this one
}

// OutboundBatch is one queued message and claimed recipients of it that
// share a domain.
type OutboundBatch struct {
	MessageID int64
	Domain    string
	Kind      string
	Ref       string
	CreatedAt time.Time
	Raw       []byte
	// Open, when Raw is nil, reads the message (Size bytes) from storage:
	// a message too large to claim whole. It may be called several times
	// (once to sign, once per transaction); each reader is closed.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// Size is the message's length; len(Raw) when Raw is set.
	Size  int64
	Rcpts []OutboundRcpt

	size int64 // the message's length when claimed, counted in the worker's window
	// dkim are the DKIM-Signature fields sent before the message, once signed.
	dkim []byte
	// readErr is why a message given through Open could not be read
	// before its first transaction; it is then not sent.
	readErr error
	// utf8Head is whether the header of a message given through Open
	// holds a byte outside ASCII.
	utf8Head bool
	left     int // rows not yet recorded
}

// DeliveryResult is the outcome of one attempt for one recipient row.
type DeliveryResult struct {
	ID int64
	// State is StateSent, StateDeferred, StateFailed, or StateQueued for a
	// row handed back untried (at shutdown); no attempt is counted then.
	State       string
	NextAttempt time.Time // when a deferred row is due again
	Reply       string    // the SMTP reply or error, for operators
}

// OutboundQueue is what the delivery worker needs from the queue's storage.
type OutboundQueue interface {
	// Recover hands rows left in sending by an earlier run back to the
	// queue. It is called once, before the first Claim.
	Recover(ctx context.Context, now time.Time) (int, error)
	// Claim marks up to limit due rows as sending and returns them grouped
	// by message and domain, leaving rows of the domains in skip alone. It
	// stops before the messages exceed maxBytes in all (0: no bound), but
	// always claims at least the first due row.
	Claim(ctx context.Context, now time.Time, limit int, maxBytes int64, skip []string) ([]OutboundBatch, error)
	// Record stores the outcomes of attempts, in one transaction.
	Record(ctx context.Context, now time.Time, results []DeliveryResult) error
	// NextDue is when the earliest waiting row is due; ok is false when no
	// row waits.
	NextDue(ctx context.Context) (due time.Time, ok bool, err error)
}

// FailedDelivery tells the rest of cvd that a recipient will not get a
// message (a 5xx reply or the maximum age reached).
type FailedDelivery struct {
	ID        int64 // queue row
	MessageID int64
	Rcpt      string
	Kind      string
	Ref       string
	Reply     string
}

// Resolver looks up MX records; *net.Resolver is one.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// DefaultBackoff is the wait after the 1st, 2nd, ... temporary failure;
// the last value repeats.
var DefaultBackoff = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 4 * time.Hour}

// DeliveryOptions configures a DeliveryWorker.
type DeliveryOptions struct {
	// Mode is ModeOutbox (default), ModeSmarthost or ModeMX.
	Mode string
	// Hostname is the name given in EHLO.
	Hostname string
	// Domain is cvd's mail domain, for the VERP return path
	// security+bounce-TOKEN@Domain.
	Domain string

	// Smarthost is host:port of the relay (ModeSmarthost).
	Smarthost string
	// SmarthostTLS is "starttls" (default), "tls" (implicit TLS) or "none"
	// (only for a relay on a trusted network).
	SmarthostTLS string
	// Username and Password enable AUTH PLAIN (or LOGIN) at the smarthost.
	Username string
	Password string
	// TLSConfig verifies the smarthost; nil means the system roots.
	TLSConfig *tls.Config

	// Resolver finds MX hosts (ModeMX); net.DefaultResolver when nil.
	Resolver Resolver
	// MXPort is the port MX hosts are reached on; 25 when 0.
	MXPort int
	// MTASTS, when set, applies recipient domains' MTA-STS policies
	// (RFC 8461) in ModeMX: with mode enforce only matching MX hosts are
	// used, over verified TLS, or the mail is deferred.
	MTASTS *MTASTS
	// RequireTLS names domains whose MX hosts must offer TLS with a
	// certificate valid for their name (ModeMX), or mail is deferred.
	RequireTLS []string
	// MXRootCAs verifies MX certificates where verification is required;
	// the system's roots when nil.
	MXRootCAs *x509.CertPool

	// Outbox receives mail in ModeOutbox.
	Outbox *Maildir

	// DKIM, when set, signs every message once before its first
	// transaction, in every mode.
	DKIM *DKIMSigner

	// MaxAge is how long a message is retried; 5 days when 0.
	MaxAge time.Duration
	// Backoff is the retry schedule; DefaultBackoff when nil.
	Backoff []time.Duration
	// PerDestination bounds the connections to one destination (the
	// smarthost, an MX domain, the outbox); 4 when 0.
	PerDestination int
	// MaxRcptsPerTransaction bounds the recipients of one SMTP transaction;
	// 50 when 0.
	MaxRcptsPerTransaction int
	// Window bounds the rows claimed and not yet recorded (so also the
	// mail that may go out twice after a crash); 512 when 0. Rows wait
	// in it for their outcomes to be committed, so it must cover the
	// rows sent while a record and the next claim commit, or sessions
	// wait for work.
	Window int
	// WindowBytes bounds the size of the messages claimed and not yet
	// recorded (each message once, whatever its recipients), and so the
	// memory they take, give or take one message; 64 MiB when 0.
	WindowBytes int64
	// PollInterval is the longest wait between looks at the queue (for
	// mail queued by another process); 15s when 0.
	PollInterval time.Duration
	// ConnectTimeout bounds a TCP connect; 30s when 0. CommandTimeout
	// bounds each SMTP reply; 5 minutes when 0.
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	// ShutdownGrace is how long attempts under way may finish once Run's
	// context ends; 10s when 0.
	ShutdownGrace time.Duration

	// OnFailure, when set, is called after a row was recorded as failed.
	OnFailure func(ctx context.Context, f FailedDelivery)
	Logger    *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// DeliveryWorker takes mail from the outbound queue and delivers it.
type DeliveryWorker struct {
	q    OutboundQueue
	opts DeliveryOptions
	log  *slog.Logger

	wake    chan struct{}
	freed   chan struct{}
	results chan []jobResult
	stop    chan struct{}
	jobCtx  context.Context
	abort   context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	inflight int // rows claimed and not yet recorded
	// inflightBytes is the size of the messages of those rows.
	inflightBytes int64
	dests         map[string]*destination

	relaySize atomic.Int64 // the smarthost's SIZE (RFC 1870); 0 when unknown
}

// RelayMaxSize is the largest message the smarthost said it takes (the
// SIZE of its EHLO reply), or 0 when unknown or unlimited.
func (w *DeliveryWorker) RelayMaxSize() int64 { return w.relaySize.Load() }

// ProbeRelay connects to the smarthost once to learn its SIZE, so the
// intake knows the limit before the first delivery. Failures are only
// logged: delivery retries on its own.
func (w *DeliveryWorker) ProbeRelay(ctx context.Context) {
	if w.opts.Mode != ModeSmarthost {
		return
	}
	c, _, _, err := w.connect(ctx, "")
	if err != nil {
		w.log.Warn("smarthost not reachable at start", "err", err)
		return
	}
	c.Quit()
}

// learnSize records the SIZE a server announced.
func (w *DeliveryWorker) learnSize(c *smtp.Client) {
	ok, v := c.Extension("SIZE")
	if !ok {
		return
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return
	}
	if old := w.relaySize.Swap(n); old != n {
		w.log.Info("smarthost message size limit", "bytes", n)
	}
}

type job struct {
	batch  *OutboundBatch
	rcpts  []OutboundRcpt
	signed *sync.Once // shared by the jobs of one batch
}

type jobResult struct {
	DeliveryResult
	batch *OutboundBatch
	rcpt  string
}

// destination is where jobs wait for one of up to PerDestination
// goroutines, each holding its own connection.
type destination struct {
	key    string
	jobs   chan *job
	active int
	rows   int // rows dispatched here and not finished
}

// NewDeliveryWorker checks opts and returns a worker for q.
func NewDeliveryWorker(q OutboundQueue, opts DeliveryOptions) (*DeliveryWorker, error) {
	if opts.Mode == "" {
		opts.Mode = ModeOutbox
	}
	switch opts.Mode {
	case ModeOutbox:
		if opts.Outbox == nil {
			return nil, errors.New("delivery: outbox mode needs a Maildir")
		}
	case ModeSmarthost:
		if _, _, err := net.SplitHostPort(opts.Smarthost); err != nil {
			return nil, fmt.Errorf("delivery: smarthost %q: %w", opts.Smarthost, err)
		}
		if opts.SmarthostTLS == "" {
			opts.SmarthostTLS = "starttls"
		}
		switch opts.SmarthostTLS {
		case "starttls", "tls", "none":
		default:
			return nil, fmt.Errorf("delivery: smarthost TLS mode %q: use starttls, tls or none", opts.SmarthostTLS)
		}
	case ModeMX:
		if opts.Resolver == nil {
			opts.Resolver = net.DefaultResolver
		}
		if opts.MXPort == 0 {
			opts.MXPort = 25
		}
	default:
		return nil, fmt.Errorf("delivery: unknown mode %q", opts.Mode)
	}
	if opts.Domain == "" || opts.Hostname == "" {
		return nil, errors.New("delivery: Domain and Hostname are required")
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 5 * 24 * time.Hour
	}
	if len(opts.Backoff) == 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.PerDestination <= 0 {
		opts.PerDestination = 4
	}
	if opts.MaxRcptsPerTransaction <= 0 {
		opts.MaxRcptsPerTransaction = 50
	}
	if opts.Window <= 0 {
		opts.Window = 512
	}
	if opts.WindowBytes <= 0 {
		opts.WindowBytes = 64 << 20
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 15 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = 5 * time.Minute
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &DeliveryWorker{
		q:     q,
		opts:  opts,
		log:   opts.Logger.With("proto", "delivery", "mode", opts.Mode),
		wake:  make(chan struct{}, 1),
		freed: make(chan struct{}, 1),
		dests: map[string]*destination{},
	}, nil
}

// Wake makes the worker look at the queue now, e.g. right after mail was
// queued. It never blocks.
func (w *DeliveryWorker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers queued mail until ctx ends. It first requeues rows an
// earlier run left in sending. When ctx ends, attempts under way get
// ShutdownGrace to finish; mail not yet tried is handed back to the queue.
func (w *DeliveryWorker) Run(ctx context.Context) error {
	n, err := w.q.Recover(ctx, w.opts.Now())
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	if n > 0 {
		w.log.Warn("requeued mail interrupted by an earlier stop; it may reach some recipients twice", "rows", n)
	}
	w.results = make(chan []jobResult, w.opts.Window)
	w.stop = make(chan struct{})
	w.jobCtx, w.abort = context.WithCancel(context.WithoutCancel(ctx))
	committed := make(chan struct{})
	go w.commit(ctx, committed)

	for ctx.Err() == nil {
		wait := w.round(ctx)
		if wait == 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-w.freed:
		case <-t.C:
		}
		t.Stop()
	}

	// Shut down: no new attempts; the ones under way get a grace period.
	close(w.stop)
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.opts.ShutdownGrace):
		w.log.Warn("aborting deliveries under way at shutdown; they will be retried")
		w.abort()
		<-done
	}
	w.abort()
	close(w.results)
	<-committed
	return nil
}

// round claims what the window allows, dispatches it and returns how long
// to wait before the next round (0: go on at once).
func (w *DeliveryWorker) round(ctx context.Context) time.Duration {
	poll := w.opts.PollInterval
	limit, maxBytes, skip, blocked := w.claimPlan()
	if blocked {
		return poll // woken by freed
	}
	now := w.opts.Now()
	batches, err := w.q.Claim(ctx, now, limit, maxBytes, skip)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("claim from the outbound queue", "err", err)
		}
		return 5 * time.Second
	}
	claimed := 0
	for i := range batches {
		claimed += len(batches[i].Rcpts)
		w.dispatch(&batches[i])
	}
	if claimed >= limit {
		return 0
	}
	due, ok, err := w.q.NextDue(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("read the outbound queue", "err", err)
		}
		return 5 * time.Second
	}
	if !ok {
		return poll
	}
	d := due.Sub(now)
	if d <= 0 {
		// Due but not claimed: its destination is busy; freed wakes us.
		return poll
	}
	return min(d, poll)
}

// sign adds the DKIM signatures to j's message, once for all jobs of its
// batch. It runs in the destination goroutines, so that signing (RSA costs
// milliseconds a message) uses every core and overlaps with sending. A
// message that cannot be signed goes out unsigned rather than not at all;
// the error is logged. A message given through Open is read here once
// (see prepareStreamed), and a failure to read it is kept in readErr.
func (w *DeliveryWorker) sign(j *job) {
	if w.opts.DKIM == nil && !j.batch.streamed() {
		return
	}
	j.signed.Do(func() {
		b := j.batch
		if b.streamed() {
			b.readErr = w.prepareStreamed(b)
			return
		}
		fields, err := w.opts.DKIM.Fields(b.Raw)
		if err != nil {
			w.log.Error("dkim sign", "msg", b.MessageID, "err", err)
			return
		}
		b.dkim = fields
	})
}

// claimPlan says how many rows, and how many bytes of messages, may be
// claimed and which domains are busy.
func (w *DeliveryWorker) claimPlan() (limit int, maxBytes int64, skip []string, blocked bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	limit = w.opts.Window - w.inflight
	maxBytes = w.opts.WindowBytes - w.inflightBytes
	// Claim in bulk: one transaction per quarter window at most.
	if limit <= 0 || w.inflight > 0 && limit < w.opts.Window/4 || maxBytes <= 0 {
		return 0, 0, nil, true
	}
	if w.opts.Mode == ModeMX {
		// One slow domain may not hold more than half the window.
		cap := max(w.opts.Window/2, 1)
		for key, d := range w.dests {
			if d.rows >= cap {
				skip = append(skip, key)
			}
		}
	}
	return limit, maxBytes, skip, false
}

func (w *DeliveryWorker) destKey(domain string) string {
	switch w.opts.Mode {
	case ModeMX:
		return domain
	case ModeSmarthost:
		return "smarthost " + w.opts.Smarthost
	}
	return "outbox"
}

// dispatch splits a batch into transactions and queues them at their
// destination, starting a goroutine there if the limit allows.
func (w *DeliveryWorker) dispatch(b *OutboundBatch) {
	key := w.destKey(b.Domain)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight += len(b.Rcpts)
	b.size, b.left = b.msgLen(), len(b.Rcpts)
	w.inflightBytes += b.size
	d := w.dests[key]
	if d == nil {
		// Capacity: never more jobs than rows in flight, so sends never block.
		d = &destination{key: key, jobs: make(chan *job, w.opts.Window)}
		w.dests[key] = d
	}
	signed := new(sync.Once)
	for rcpts := b.Rcpts; len(rcpts) > 0; {
		n := min(len(rcpts), w.opts.MaxRcptsPerTransaction)
		d.jobs <- &job{batch: b, rcpts: rcpts[:n], signed: signed}
		d.rows += n
		rcpts = rcpts[n:]
		if d.active < w.opts.PerDestination {
			d.active++
			w.wg.Add(1)
			go w.destLoop(d, b.Domain)
		}
	}
}

// idleClose is how long a connection waits for another job.
const idleClose = 5 * time.Second

// destLoop runs jobs of one destination over one connection at a time.
func (w *DeliveryWorker) destLoop(d *destination, domain string) {
	defer w.wg.Done()
	s := w.newSender(domain)
	defer s.close()
	idle := time.NewTimer(idleClose)
	defer idle.Stop()
	// ahead is a job taken while the one before it was sent, so that its
	// transaction starts in the same write as that message's content; it
	// runs next, before any other.
	var ahead *job
	next := func() *job {
		select {
		case <-w.stop:
			return nil
		default:
		}
		select {
		case ahead = <-d.jobs:
		default:
		}
		return ahead
	}
	run := func(j *job) {
		var res []jobResult
		select {
		case <-w.stop:
			if !s.started(j) {
				res = w.release(j)
				break
			}
			res = w.attempt(s, j, next)
		default:
			res = w.attempt(s, j, next)
		}
		w.mu.Lock()
		d.rows -= len(j.rcpts)
		w.mu.Unlock()
		w.results <- res
		idle.Reset(idleClose)
	}
	for {
		if j := ahead; j != nil {
			ahead = nil
			run(j)
			continue
		}
		select {
		case j := <-d.jobs:
			run(j)
		case <-w.stop:
			w.drain(d)
			w.exitDest(d)
			return
		case <-idle.C:
			if w.exitDest(d) {
				return
			}
			idle.Reset(idleClose)
		}
	}
}

// drain hands back the jobs waiting at d, at shutdown.
func (w *DeliveryWorker) drain(d *destination) {
	for {
		select {
		case j := <-d.jobs:
			w.mu.Lock()
			d.rows -= len(j.rcpts)
			w.mu.Unlock()
			w.results <- w.release(j)
		default:
			return
		}
	}
}

// exitDest ends one goroutine of d unless jobs wait there.
func (w *DeliveryWorker) exitDest(d *destination) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(d.jobs) > 0 {
		select {
		case <-w.stop:
		default:
			return false
		}
	}
	d.active--
	if d.active == 0 && len(d.jobs) == 0 && w.dests[d.key] == d {
		delete(w.dests, d.key)
	}
	return true
}

func (w *DeliveryWorker) release(j *job) []jobResult {
	out := make([]jobResult, len(j.rcpts))
	for i, r := range j.rcpts {
		out[i] = jobResult{DeliveryResult{ID: r.ID, State: StateQueued}, j.batch, r.Addr}
	}
	return out
}

// rcptStatus is what one attempt did for one recipient.
type rcptStatus struct {
	ok    bool
	perm  bool // with !ok: a permanent failure
	abort bool // not tried to the end because of shutdown
	reply string
}

// sender delivers jobs of one destination, keeping its connection.
type sender interface {
	// send delivers j. It may call next (at most once) for the job to run
	// after j, and start that job's transaction early; send must then be
	// called with that job next.
	send(ctx context.Context, j *job, next func() *job) []rcptStatus
	// started reports whether j's transaction is under way already.
	started(j *job) bool
	close()
}

func (w *DeliveryWorker) newSender(domain string) sender {
	if w.opts.Mode == ModeOutbox {
		return &outboxSender{w: w}
	}
	return &smtpSender{w: w, domain: domain}
}

// attempt runs one job and turns its statuses into results; next is
// passed on to the sender.
func (w *DeliveryWorker) attempt(s sender, j *job, next func() *job) []jobResult {
	w.sign(j)
	var st []rcptStatus
	if err := j.batch.readErr; err != nil {
		st = all(len(j.rcpts), rcptStatus{reply: err.Error()})
	} else {
		st = s.send(w.jobCtx, j, next)
	}
	now := w.opts.Now()
	out := make([]jobResult, len(j.rcpts))
	for i, r := range j.rcpts {
		res := w.decide(j.batch, r, st[i], now)
		out[i] = jobResult{res, j.batch, r.Addr}
		if res.State == StateQueued {
			continue
		}
		metrics.Deliveries.WithLabelValues(res.State).Inc()
		w.logResult(j, r, res)
	}
	return out
}

// logResult logs the outcome of one attempt for one recipient.
func (w *DeliveryWorker) logResult(j *job, r OutboundRcpt, res DeliveryResult) {
	level, msg := slog.LevelInfo, "delivered"
	switch res.State {
	case StateDeferred:
		level, msg = slog.LevelWarn, "delivery deferred"
	case StateFailed:
		level, msg = slog.LevelError, "delivery failed"
	}
	attrs := []slog.Attr{slog.Int64("id", r.ID), slog.Int64("msg", j.batch.MessageID), slog.String("rcpt", r.Addr),
		slog.Int("attempt", r.Attempts+1), slog.String("reply", res.Reply)}
	if res.State == StateDeferred {
		attrs = append(attrs, slog.Time("next", res.NextAttempt))
	}
	w.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// decide applies the retry policy to one recipient's status.
func (w *DeliveryWorker) decide(b *OutboundBatch, r OutboundRcpt, st rcptStatus, now time.Time) DeliveryResult {
	res := DeliveryResult{ID: r.ID, Reply: st.reply}
	switch {
	case st.abort:
		res.State = StateQueued
	case st.ok:
		res.State = StateSent
	case st.perm:
		res.State = StateFailed
	default:
		deadline := b.CreatedAt.Add(w.opts.MaxAge)
		if !now.Before(deadline) {
			res.State = StateFailed
			res.Reply = fmt.Sprintf("gave up after %d attempts over %s: %s", r.Attempts+1, w.opts.MaxAge, st.reply)
			break
		}
		res.State = StateDeferred
		res.NextAttempt = now.Add(w.backoff(r.Attempts + 1))
		if res.NextAttempt.After(deadline) {
			res.NextAttempt = deadline
		}
	}
	return res
}

// backoff is the wait after the n-th failed attempt (n >= 1).
func (w *DeliveryWorker) backoff(n int) time.Duration {
	b := w.opts.Backoff
	return b[min(n, len(b))-1]
}

// Outcomes are recorded in one transaction once commitBatch rows are
// together or commitGather after the first of them.
const (
	commitBatch  = 128
	commitGather = 3 * time.Millisecond
)

// commit records results in batches until results is closed.
func (w *DeliveryWorker) commit(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	bg := context.WithoutCancel(ctx)
	gather := time.NewTimer(0)
	<-gather.C
	for first := range w.results {
		// Gather outcomes for a moment: each commit is a sync, and the
		// rows stay claimed (counted in the window) until it is done.
		batch := first
		gather.Reset(commitGather)
	more:
		for len(batch) < commitBatch {
			select {
			case r, ok := <-w.results:
				if !ok {
					break more
				}
				batch = append(batch, r...)
			case <-gather.C:
				break more
			}
		}
		if !gather.Stop() {
			select {
			case <-gather.C:
			default:
			}
		}
		res := make([]DeliveryResult, len(batch))
		for i, r := range batch {
			res[i] = r.DeliveryResult
		}
		var err error
		for try := 0; try < 5; try++ {
			rctx, cancel := context.WithTimeout(bg, time.Minute)
			err = w.q.Record(rctx, w.opts.Now(), res)
			cancel()
			if err == nil {
				break
			}
			w.log.Error("record delivery outcomes", "rows", len(res), "err", err)
			time.Sleep(time.Second)
		}
		if err == nil && w.opts.OnFailure != nil {
			for _, r := range batch {
				if r.State == StateFailed {
					w.opts.OnFailure(bg, FailedDelivery{
						ID: r.ID, MessageID: r.batch.MessageID, Rcpt: r.rcpt,
						Kind: r.batch.Kind, Ref: r.batch.Ref, Reply: r.Reply,
					})
				}
			}
		}
		// Unrecorded rows stay in sending; the next start retries them.
		w.mu.Lock()
		w.inflight -= len(batch)
		for _, r := range batch {
			if r.batch.left--; r.batch.left == 0 {
				w.inflightBytes -= r.batch.size
			}
		}
		w.mu.Unlock()
		select {
		case w.freed <- struct{}{}:
		default:
		}
	}
}

// inFlight returns the rows claimed and not yet recorded.
func (w *DeliveryWorker) inFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inflight
}

// VERPPrefix starts the local part of cvd's return paths.
const VERPPrefix = "security+bounce-"

// ReturnPath is the VERP envelope sender for a row's token.
func ReturnPath(token, domain string) string {
	return VERPPrefix + token + "@" + domain
}

// VERPToken returns the token of a return path of domain
// (security+bounce-TOKEN@domain, case-insensitive), or ok false.
func VERPToken(addr, domain string) (token string, ok bool) {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[at+1:], domain) {
		return "", false
	}
	local := strings.ToLower(addr[:at])
	token, ok = strings.CutPrefix(local, VERPPrefix)
	if !ok || token == "" || strings.ContainsAny(token, "+@ ") {
		return "", false
	}
	return token, true
}

// CheckRelay connects to the smarthost as delivery does (TLS, AUTH) and
// quits; in other modes it does nothing.
func (w *DeliveryWorker) CheckRelay(ctx context.Context) error {
	if w.opts.Mode != ModeSmarthost {
		return nil
	}
	c, _, _, err := w.connect(ctx, "")
	if err != nil {
		return err
	}
	return c.Quit()
}

// wireLen is the length of the message as sent: its DKIM fields and the
// message.
func (b *OutboundBatch) wireLen() int64 { return int64(len(b.dkim)) + b.msgLen() }
