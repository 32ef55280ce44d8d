package testutil

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresUser and PostgresPassword are the superuser of the clusters
// Postgres starts; it authenticates with scram-sha-256 over TCP.
const (
	PostgresUser     = "furrow"
	PostgresPassword = "furrow-test-password"
	PostgresDB       = "furrow"
)

// PG is a throwaway PostgreSQL cluster: initdb in a temporary directory,
// listening on 127.0.0.1 only, on a free port, with its unix socket in
// that directory.
type PG struct {
	t    testing.TB
	bin  string // directory holding initdb, pg_ctl, postgres
	dir  string // cluster root: data/, log, socket
	port int
	cred *syscall.Credential // who runs the server (initdb refuses root)
}

// Postgres starts a throwaway PostgreSQL cluster for the test, creates
// database PostgresDB and stops and removes the cluster at cleanup. It
// finds initdb and pg_ctl on PATH, then in /usr/lib/postgresql/*/bin;
// without them the test fails, saying which Debian package to install.
// As root it runs the server as the postgres user (nobody if there is
// none), as initdb refuses to run as root.
func Postgres(t testing.TB) *PG {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "furrow-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg := &PG{t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		pg.stop(false)
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			t.Fatal(err)
		}
		pg.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pw, []byte(PostgresPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pg.cred != nil {
		os.Chown(pw, int(pg.cred.Uid), int(pg.cred.Gid))
	}
	pg.run("initdb", "-D", filepath.Join(dir, "data"), "-U", PostgresUser, "--pwfile", pw,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	os.Remove(pw)
	pg.port = FreePort(t)
	pg.Start()
	conn := pg.connect("postgres")
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE DATABASE "+PostgresDB); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return pg
}

// DSN returns a URL DSN for database PostgresDB as the superuser.
func (pg *PG) DSN() string { return pg.DSNFor(PostgresUser, PostgresPassword, PostgresDB) }

// DSNFor returns a URL DSN for the given user, password and database.
func (pg *PG) DSNFor(user, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", user, password, pg.port, db)
}

// Port is the TCP port the cluster listens on (the same across Stop and
// Start).
func (pg *PG) Port() int { return pg.port }

// Env returns the environment for libpq tools (psql) to reach database
// PostgresDB.
func (pg *PG) Env() []string {
	return append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(pg.port),
		"PGUSER="+PostgresUser, "PGPASSWORD="+PostgresPassword, "PGDATABASE="+PostgresDB)
}

// Psql runs the psql binary with args against database PostgresDB and
// returns its standard output; the test fails if psql does.
func (pg *PG) Psql(args ...string) string {
	pg.t.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		psql = filepath.Join(pg.bin, "psql")
	}
	cmd := exec.Command(psql, append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t"}, args...)...)
	cmd.Env = pg.Env()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		pg.t.Fatalf("psql %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimRight(string(out), "\n")
}

// Start starts the cluster (again, after Stop) and waits until it
// accepts connections.
func (pg *PG) Start() {
	pg.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c max_connections=20",
		pg.port, pg.dir)
	pg.run("pg_ctl", "start", "-w", "-t", "60", "-D", filepath.Join(pg.dir, "data"),
		"-l", filepath.Join(pg.dir, "log"), "-o", opts)
}

// Stop stops the cluster (fast shutdown: sessions are ended), for tests
// of an outage; Start brings it back.
func (pg *PG) Stop() {
	pg.t.Helper()
	pg.stop(true)
}

func (pg *PG) stop(must bool) {
	data := filepath.Join(pg.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err != nil {
		return // not running
	}
	out, err := pg.cmd("pg_ctl", "stop", "-w", "-m", "fast", "-D", data).CombinedOutput()
	if err != nil && must {
		pg.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (pg *PG) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = pg.dir
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return cmd
}

func (pg *PG) run(name string, args ...string) {
	pg.t.Helper()
	out, err := pg.cmd(name, args...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "log"))
		pg.t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", name, strings.Join(args, " "), err, out, log)
	}
}

func (pg *PG) connect(db string) *pgx.Conn {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSNFor(PostgresUser, PostgresPassword, db))
	if err != nil {
		pg.t.Fatalf("connect to the test cluster: %v", err)
	}
	return conn
}

// postgresBin finds the directory of initdb and pg_ctl.
func postgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "pg_ctl")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: " +
		"install the Debian package postgresql (apt-get install postgresql); the Postgres destination tests need a real server")
}

func versionOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// unprivileged returns the credentials of the postgres user, or nobody.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and there is no postgres or nobody user to run PostgreSQL as (initdb refuses root)")
}

// FreePort returns a port of 127.0.0.1 where nothing listens (for a
// moment: another process may take it).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
