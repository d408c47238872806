package store

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
)

// stmtCacheSize is how many prepared statements each connection keeps.
const stmtCacheSize = 256

// connector opens SQLite connections that keep their prepared statements:
// a statement run again on the same connection is not parsed again.
type connector struct {
	dsn string
}

// sqliteDriver is the driver modernc.org/sqlite registers as "sqlite".
var sqliteDriver = func() driver.Driver {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	return db.Driver()
}()

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	inner, err := sqliteDriver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{inner: inner, cache: map[string]*list.Element{}, lru: list.New()}, nil
}

func (c *connector) Driver() driver.Driver { return sqliteDriver }

// innerConn is what cachingConn needs of the SQLite connection.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
}

// cachingConn wraps a connection with a cache of prepared statements,
// keyed by their SQL text, least recently used evicted first.
type cachingConn struct {
	inner driver.Conn
	mu    sync.Mutex
	cache map[string]*list.Element
	lru   *list.List
}

type cachedStmt struct {
	query string
	stmt  driver.Stmt
	// busy is set while rows read from the statement are open: a
	// statement cannot run twice at once.
	busy bool
	// evicted statements are closed once no longer busy.
	evicted bool
}

func (c *cachingConn) conn() (innerConn, error) {
	ic, ok := c.inner.(innerConn)
	if !ok {
		return nil, errors.New("sqlite connection lacks the context interfaces")
	}
	return ic, nil
}

// take returns the cached statement for query, prepared on first use, or
// nil when it is in use (the caller runs query uncached).
func (c *cachingConn) take(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cache[query]; ok {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(e)
		cs.busy = true
		return cs, nil
	}
	ic, err := c.conn()
	if err != nil {
		return nil, err
	}
	st, err := ic.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	cs := &cachedStmt{query: query, stmt: st, busy: true}
	c.cache[query] = c.lru.PushFront(cs)
	for c.lru.Len() > stmtCacheSize {
		old := c.lru.Back()
		c.lru.Remove(old)
		ocs := old.Value.(*cachedStmt)
		delete(c.cache, ocs.query)
		ocs.evicted = true
		if !ocs.busy {
			ocs.stmt.Close()
		}
	}
	return cs, nil
}

// release makes cs available again (closing it when it was evicted).
func (c *cachingConn) release(cs *cachedStmt) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs.busy = false
	if cs.evicted {
		return cs.stmt.Close()
	}
	return nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		ic, err := c.conn()
		if err != nil {
			return nil, err
		}
		return ic.ExecContext(ctx, query, args)
	}
	res, err := cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	if rerr := c.release(cs); err == nil && rerr != nil {
		err = rerr
	}
	return res, err
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		ic, err := c.conn()
		if err != nil {
			return nil, err
		}
		return ic.QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		return nil, err
	}
	return &cachedRows{Rows: rows, c: c, cs: cs}, nil
}

// cachedRows gives its statement back when closed.
type cachedRows struct {
	driver.Rows
	c    *cachingConn
	cs   *cachedStmt
	once sync.Once
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(func() {
		if rerr := r.c.release(r.cs); err == nil {
			err = rerr
		}
	})
	return err
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.inner.Prepare(query)
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	ic, err := c.conn()
	if err != nil {
		return nil, err
	}
	return ic.PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	ic, err := c.conn()
	if err != nil {
		return nil, err
	}
	return ic.BeginTx(ctx, opts)
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	c.mu.Lock()
	var errs []error
	for e := c.lru.Front(); e != nil; e = e.Next() {
		errs = append(errs, e.Value.(*cachedStmt).stmt.Close())
	}
	c.cache, c.lru = map[string]*list.Element{}, list.New()
	c.mu.Unlock()
	errs = append(errs, c.inner.Close())
	return errors.Join(errs...)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}
