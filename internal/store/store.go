package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Sentinel errors. Callers map them to API errors.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrBusy     = errors.New("database is busy or locked by another process")
	ErrCorrupt  = errors.New("database is corrupt or not a banger database")
	ErrFull     = errors.New("disk is full")
	ErrInUse    = errors.New("still in use")
)

// BusyTimeout is how long a statement waits for another writer.
const BusyTimeout = 5 * time.Second

// Store is banger's state database.
type Store struct {
	db   *sql.DB
	path string
}

// Open opens (creating if needed) the database at path and migrates it to
// the newest schema. A database newer than this binary, a corrupt file or a
// lock held elsewhere is reported with what to do; nothing is overwritten.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory for %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(" + strconv.Itoa(int(BusyTimeout/time.Millisecond)) + ")" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	// One connection: SQLite allows one writer, and queuing here is faster
	// and clearer than SQLITE_BUSY between our own connections.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	s := &Store{db: db, path: path}
	if err := s.check(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) check(ctx context.Context) error {
	var res string
	if err := s.db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return s.wrap("checking database", err)
	}
	if res != "ok" {
		return s.wrap("checking database", fmt.Errorf("%w: quick_check says %s", ErrCorrupt, res))
	}
	return nil
}

// wrap turns SQLite errors into the sentinels above, with the path and the
// fix in the message.
func (s *Store) wrap(doing string, err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			err = fmt.Errorf("%w (%v)", ErrBusy, err)
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			err = fmt.Errorf("%w (%v)", ErrCorrupt, err)
		case sqlite3.SQLITE_FULL:
			err = fmt.Errorf("%w (%v)", ErrFull, err)
		case sqlite3.SQLITE_CONSTRAINT:
			if strings.Contains(se.Error(), "FOREIGN KEY") {
				err = fmt.Errorf("%w (%v)", ErrInUse, err)
			} else {
				err = fmt.Errorf("%w (%v)", ErrExists, err)
			}
		}
	}
	switch {
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("%s %s: %w; nothing was changed: move the file aside (keep it for recovery) and restart bangerd to begin with an empty database", doing, s.path, err)
	case errors.Is(err, ErrBusy):
		return fmt.Errorf("%s %s: %w; is another bangerd or a sqlite3 shell using it? (`banger daemon status`)", doing, s.path, err)
	case errors.Is(err, ErrFull):
		return fmt.Errorf("%s %s: %w; free some space (df -h %s) and retry", doing, s.path, err, filepath.Dir(s.path))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func (s *Store) migrate(ctx context.Context) error {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("reading embedded migrations: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var current int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return s.wrap("reading schema version", err)
	}
	if current > len(names) {
		return fmt.Errorf("opening database %s: schema version %d is newer than this banger knows (%d); use the newer banger that wrote it", s.path, current, len(names))
	}
	for i := current; i < len(names); i++ {
		body, err := migrations.ReadFile("migrations/" + names[i])
		if err != nil {
			return fmt.Errorf("reading migration %s: %w", names[i], err)
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return s.wrap("starting migration "+names[i], err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return s.wrap("applying migration "+names[i], err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return s.wrap("recording migration "+names[i], err)
		}
		if err := tx.Commit(); err != nil {
			return s.wrap("committing migration "+names[i], err)
		}
	}
	return nil
}

// SchemaVersion is the applied migration count.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, s.wrap("reading schema version", err)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Changes counts the rows inserted, updated or deleted through this store
// since it was opened (SQLite's total_changes), so tests can count writes.
func (s *Store) Changes(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT total_changes()").Scan(&n)
	return n, s.wrap("counting changes", err)
}
