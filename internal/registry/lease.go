package registry

// The heartbeat loop and the lease it keeps: how a replica knows it may
// still work, and how it registers again after a lost lease.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resc-go/resc/internal/backoff"
	"github.com/resc-go/resc/internal/script"
)

// startLease starts a new lease for the registration of token, sent at
// sent, and wakes up WaitLease.
func (m *Membership) startLease(ctx context.Context, token string, sent time.Time) {
	lease, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	leaseFor := m.s.LeaseFor()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer != nil {
		m.timer.Stop()
	}
	m.token, m.pending = token, ""
	m.lease, m.cancel, m.renewed = lease, cancel, sent
	m.timer = time.AfterFunc(time.Until(sent.Add(leaseFor)), func() {
		cancel(fmt.Errorf("%w: no heartbeat renewal succeeded for %v (dead-after %v minus two heartbeat intervals)", ErrLeaseLost, leaseFor, m.s.DeadAfter))
	})
	close(m.changed)
	m.changed = make(chan struct{})
}

// Lease returns the current lease: a context that is live while this
// replica may take and handle events, and cancelled, with a cause
// (context.Cause) wrapping ErrLeaseLost or ErrStopped, as soon as it may
// not. Work must stop when it is done: the others may soon consider this
// replica dead and replay its taken lists. A lost lease is never live
// again: Run registers anew and starts a new lease (WaitLease).
func (m *Membership) Lease() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// LeaseToken returns the current lease and the token of the registration
// it belongs to: a script that must only write for this registration (the
// fenced scripts of package worker) checks that the replica key still
// holds the token.
func (m *Membership) LeaseToken() (context.Context, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease, m.token
}

// WaitLease returns a live lease, waiting while the membership is lost
// and Run registers again. It returns ErrStopped once Run has returned or
// Deregister was called, and ctx.Err() when ctx is done first. The usual
// loop of a caller:
//
//	for {
//		lease, err := m.WaitLease(ctx)
//		if err != nil {
//			return err
//		}
//		work(lease) // returns when lease is done (or ctx)
//	}
func (m *Membership) WaitLease(ctx context.Context) (context.Context, error) {
	for {
		m.mu.Lock()
		lease, changed, ended := m.lease, m.changed, m.ended
		m.mu.Unlock()
		if ended {
			return nil, ErrStopped
		}
		if lease.Err() == nil {
			return lease, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Run renews the registration every HeartbeatInterval until ctx is done,
// retrying sooner, with backoff, while Redis fails (an outage is logged
// once). When the lease is lost, Run registers again under a new token as
// soon as Redis answers, and starts a new lease.
//
// Run returns nil when ctx is done, after cancelling the lease (cause
// ErrStopped): cancel ctx only once the work under the lease has stopped
// and handed back what it held. It returns an error wrapping ErrIDInUse
// when another live replica took the id while this one could not renew
// (this process must then stop: it is the stale one), and ErrWrongType
// when a registry key was overwritten with another type. Run may be called
// once.
func (m *Membership) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("membership: Membership.Run called more than once")
	}
	defer m.end()
	interval := m.s.HeartbeatInterval
	m.mu.Lock()
	next := m.renewed.Add(interval)
	m.mu.Unlock()
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	attempt := 0
	for {
		m.mu.Lock()
		lease, ended := m.lease, m.ended
		m.mu.Unlock()
		if ended { // Deregister was called
			return nil
		}
		if lease.Err() != nil {
			m.log.Warn("lease lost: work must stop; registering again", "cause", context.Cause(lease))
			sent, err := m.registerAgain(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				m.log.Error("cannot register again", "err", err)
				return err
			}
			m.log.Warn("registered again: work may resume on the new lease")
			attempt = 0
			t.Reset(time.Until(sent.Add(interval)))
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lease.Done():
			continue
		case <-t.C:
		}
		sent, ok, err := m.heartbeat(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			m.outage.Fail(err)
			attempt++
			t.Reset(min(backoff.Delay(attempt), interval))
		case !ok:
			m.outage.OK()
			m.mu.Lock()
			m.cancel(fmt.Errorf("%w: the heartbeat key expired or holds another registration", ErrLeaseLost))
			m.mu.Unlock()
		default:
			m.outage.OK()
			attempt = 0
			m.renew(sent)
			t.Reset(time.Until(sent.Add(interval)))
		}
	}
}

// heartbeat runs heartbeat.lua once with the current token, waiting for
// the reply until the lease ends (at least one interval): a heartbeat
// queued behind a slow script, this replica's own included, still renews
// the lease when it gets its turn in time, rather than being given up
// after one interval and sent again behind the next script.
func (m *Membership) heartbeat(ctx context.Context) (sent time.Time, renewed bool, err error) {
	m.mu.Lock()
	token, end := m.token, m.renewed.Add(m.s.LeaseFor())
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, max(time.Until(end), m.s.HeartbeatInterval))
	defer cancel()
	sent = time.Now()
	res, err := heartbeatScript.Run(ctx, m.opts.Dialect, m.rdb, m.keys()[:2], token, ms(m.s.DeadAfter)).Int64Slice()
	if err != nil {
		return sent, false, fmt.Errorf("membership: heartbeat: %w", err)
	}
	switch script.Code(res) {
	case 1:
		return sent, true, nil
	case 0:
		return sent, false, nil
	}
	return sent, false, fmt.Errorf("membership: heartbeat.lua: unexpected reply %v", res)
}

// renew moves the lease's end to DeadAfter - 2*HeartbeatInterval after
// sent, unless it has already ended.
func (m *Membership) renew(sent time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.renewed = sent
	if m.lease.Err() == nil {
		m.timer.Reset(time.Until(sent.Add(m.s.LeaseFor())))
	}
}

// registerAgain registers under a new token, retrying with backoff while
// Redis fails, and starts a new lease. The same new token is sent on every
// attempt, so that an attempt whose reply was lost is taken over by the
// next; the previous token is taken over too (a lease that ran out while
// its key was still alive).
func (m *Membership) registerAgain(ctx context.Context) (time.Time, error) {
	token := newToken()
	m.mu.Lock()
	previous := m.token
	m.pending = token
	m.mu.Unlock()
	attempt := 0
	for {
		actx, cancel := context.WithTimeout(ctx, m.s.HeartbeatInterval)
		sent, err := m.registerOnce(actx, token, previous)
		cancel()
		if err == nil {
			m.outage.OK()
			m.startLease(ctx, token, sent)
			return sent, nil
		}
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
		if errors.Is(err, ErrIDInUse) || errors.Is(err, ErrWrongType) {
			m.outage.OK()
			return sent, err
		}
		m.outage.Fail(err)
		attempt++
		if !backoff.Sleep(ctx, backoff.Delay(attempt)) {
			return sent, ctx.Err()
		}
	}
}
