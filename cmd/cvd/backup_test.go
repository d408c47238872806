package main

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/internal/gpgtest"
)

// addTeamKey adds a coordinator with a fresh key (no gpg user) to cfg.
func addTeamKey(t *testing.T, dir, cfg, name, email string) {
	t.Helper()
	_, pub, err := crypto.GenerateKey(name, email, crypto.KindCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	file := strings.SplitN(email, "@", 2)[0] + ".asc"
	if err := os.WriteFile(filepath.Join(dir, "keys", file), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	cvdtest.AppendConfig(t, cfg, "\n[[embargo.team]]\nname = \""+name+"\"\nemail = \""+email+"\"\nkey_file = \"keys/"+file+"\"\n")
}

// accepted is one report the server answered 250 to.
type accepted struct {
	msgID string
	at    time.Time
}

// reportLoad sends reports to security@ from several clients at once
// until stop is closed; each report opens an incident, acknowledged to
// its reporter and fanned out to the team.
func reportLoad(t *testing.T, addr string, clients int, stop <-chan struct{}) (got func() []accepted, wait func()) {
	var mu sync.Mutex
	var acc []accepted
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from := fmt.Sprintf("r%d-%d@reporter.example", c, i)
				id := fmt.Sprintf("<load-%d-%d@reporter.example>", c, i)
				msg := "From: " + from + "\r\nTo: security@example.org\r\nSubject: flaw " + id + "\r\nMessage-ID: " + id + "\r\n\r\nA flaw, found under load.\r\n"
				cl, err := smtp.Dial(addr)
				if err == nil {
					err = cl.SendMail(from, []string{"security@example.org"}, strings.NewReader(msg))
					cl.Close()
				}
				if err != nil {
					t.Errorf("send %s: %v", id, err)
					return
				}
				mu.Lock()
				acc = append(acc, accepted{id, time.Now()})
				mu.Unlock()
			}
		}()
	}
	return func() []accepted {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(acc)
	}, wg.Wait
}

// waitRouted waits until every spooled message of the database is routed
// and the queue is empty of due mail.
func waitRouted(t *testing.T, dbFile string, diag func() string) {
	t.Helper()
	waitFor(t, "every message routed and delivered", func() bool {
		db := openRO(t, dbFile)
		defer db.Close()
		var pending int
		if err := db.QueryRow(`SELECT (SELECT COUNT(*) FROM spool WHERE state = 'new') + (SELECT COUNT(*) FROM queue WHERE state IN ('queued', 'sending'))`).Scan(&pending); err != nil {
			return false
		}
		return pending == 0
	}, diag)
}

func openRO(t *testing.T, file string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// rows returns a query's rows as lines, in the query's order.
func rows(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rs, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			if i > 0 {
				b.WriteString(" | ")
			}
			if bs, ok := v.([]byte); ok {
				fmt.Fprintf(&b, "sha256:%x", sha256.Sum256(bs))
			} else {
				fmt.Fprint(&b, v)
			}
		}
		out = append(out, b.String())
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBackupUnderLoadAndRestore takes a backup with 'cvd backup' while
// reports pour in (intake, acknowledgements and the team's copies being
// made and delivered), restores it with 'cvd restore' into a new folder
// and runs a server there. The restored database passes SQLite's
// integrity check and holds exactly the mail accepted up to the snapshot:
// every report answered 250 before the backup began, none answered after
// it ended; for those, the same incidents, members, pinned keys, queue
// rows and IMAP UIDs as the original server made.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	addTeamKey(t, dir, cfg, "Cora Coordinator", "cora@example.org")
	addTeamKey(t, dir, cfg, "Finn Fixer", "finn@example.org")
	s := startCVD(t, dir, nil, "--config", cfg)

	stop := make(chan struct{})
	got, wait := reportLoad(t, s.addr, 3, stop)
	waitFor(t, "12 reports accepted", func() bool { return len(got()) >= 12 }, s.logs)
	begin := time.Now()
	backup := filepath.Join(t.TempDir(), "cvd-backup.tar.gz")
	out := cvdtest.MustRun(t, dir, nil, "backup", backup, "--config", cfg)
	end := time.Now()
	n := len(got())
	waitFor(t, "12 more reports accepted", func() bool { return len(got()) >= n+12 }, s.logs)
	close(stop)
	wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("cvd backup: %s", strings.TrimSpace(out))
	waitRouted(t, filepath.Join(dir, "cvd.db"), s.logs)
	s.stop(t)

	restored := filepath.Join(t.TempDir(), "restored")
	out = cvdtest.MustRun(t, dir, nil, "restore", backup, "--dir", restored)
	if !strings.Contains(out, "run: cvd serve --config "+filepath.Join(restored, "cvd.toml")) {
		t.Errorf("restore output:\n%s", out)
	}
	for _, f := range []string{"keys/project.asc", "keys/project.pub.asc", "keys/cora.asc", "keys/finn.asc", "tls/cert.pem", "tls/key.pem", "dkim/rsa.pem", "dkim/ed25519.pem"} {
		want, _ := os.ReadFile(filepath.Join(dir, f))
		have, err := os.ReadFile(filepath.Join(restored, f))
		if err != nil || string(have) != string(want) || len(want) == 0 {
			t.Errorf("restored %s differs from the original (%v)", f, err)
		}
	}
	rcfg := filepath.Join(restored, "cvd.toml")
	r := startCVD(t, t.TempDir(), nil, "--config", rcfg)
	// The server on the restored folder routes what the snapshot had
	// spooled but not yet routed.
	waitRouted(t, filepath.Join(restored, "cvd.db"), r.logs)
	r.stop(t)
	if _, err := os.Stat(filepath.Join(restored, "outbox")); err != nil {
		t.Errorf("the restored server keeps its outbox in its own folder: %v", err)
	}

	orig, back := openRO(t, filepath.Join(dir, "cvd.db")), openRO(t, filepath.Join(restored, "cvd.db"))
	defer orig.Close()
	defer back.Close()
	if res := rows(t, back, `PRAGMA integrity_check`); len(res) != 1 || res[0] != "ok" {
		t.Fatalf("integrity_check of the restored database: %v", res)
	}
	if res := rows(t, back, `PRAGMA foreign_key_check`); len(res) != 0 {
		t.Fatalf("foreign_key_check of the restored database: %v", res)
	}

	// The spool: the original's first K messages, byte for byte.
	var k int64
	if err := back.QueryRow(`SELECT COALESCE(MAX(id), 0) FROM spool`).Scan(&k); err != nil {
		t.Fatal(err)
	}
	spool := `SELECT id, mail_from, raw FROM spool WHERE id <= ? ORDER BY id`
	if a, b := rows(t, orig, spool, k), rows(t, back, spool, k); !slices.Equal(a, b) {
		t.Fatalf("spool differs:\noriginal %v\nrestored %v", a, b)
	}
	var total int64
	orig.QueryRow(`SELECT COUNT(*) FROM spool`).Scan(&total)
	inBackup := map[string]bool{}
	for _, l := range rows(t, back, `SELECT raw FROM spool`) {
		inBackup[l] = true
	}
	var before, after int
	for _, a := range got() {
		raw := rows(t, orig, `SELECT raw FROM spool WHERE instr(raw, ?) > 0`, "Message-ID: "+a.msgID)
		if len(raw) != 1 {
			t.Fatalf("report %s accepted but %d spool rows hold it", a.msgID, len(raw))
		}
		switch {
		case a.at.Before(begin) && !inBackup[raw[0]]:
			t.Errorf("report %s accepted before the backup began is not in it", a.msgID)
		case a.at.After(end) && inBackup[raw[0]]:
			t.Errorf("report %s accepted after the backup ended is in it", a.msgID)
		case a.at.Before(begin):
			before++
		case a.at.After(end):
			after++
		}
	}
	t.Logf("%d reports accepted, %d in the backup (%d before it began); %d after it ended, not in it", total, k, before, after)
	if before < 12 || after < 12 || k >= total {
		t.Fatalf("the load did not straddle the backup: %d before, %d after, %d of %d in it", before, after, k, total)
	}

	// Everything made from those messages is the same on both servers,
	// and the restored server has nothing else.
	incidents := `SELECT id FROM incident WHERE spool_id <= ` + fmt.Sprint(k)
	for _, q := range []struct{ what, sql string }{
		{"incidents", `SELECT id, state, reporter, spool_id FROM incident WHERE spool_id <= ? ORDER BY id`},
		{"lists", `SELECT name, kind FROM list WHERE kind = 'announce' OR name IN (` + incidents + `) OR ? = 0 ORDER BY name`},
		{"members", `SELECT l.name, m.email, m.role, m.state FROM member m JOIN list l ON l.id = m.list_id
			WHERE l.kind = 'announce' OR l.name IN (` + incidents + `) OR ? = 0 ORDER BY l.name, m.email`},
		{"pinned keys", `SELECT p.email, p.fingerprint, k.armored FROM key_pin p JOIN pgp_key k USING (fingerprint) WHERE ? >= 0 ORDER BY p.email`},
		{"posts", `SELECT l.name, p.message_id, p.status, p.spool_id, p.imap_uid FROM post p JOIN list l ON l.id = p.list_id
			WHERE p.spool_id <= ? ORDER BY l.name, p.id`},
		{"queue rows", `SELECT m.kind, m.ref, q.rcpt, q.imap_uid FROM queue q JOIN queue_msg m ON m.id = q.msg_id
			WHERE m.ref IN (` + incidents + `) OR ? = 0 ORDER BY m.ref, m.kind, q.rcpt, q.imap_uid`},
		{"IMAP UIDs of members' copies", `SELECT l.name, mb.email, c.imap_uid FROM post_copy c JOIN member mb ON mb.id = c.member_id
			JOIN list l ON l.id = mb.list_id WHERE l.name IN (` + incidents + `) OR ? = 0 ORDER BY l.name, mb.email, c.imap_uid`},
		{"timelines", `SELECT incident, actor, kind FROM incident_event WHERE incident IN (` + incidents + `) OR ? = 0 ORDER BY incident, id`},
	} {
		a, b := rows(t, orig, q.sql, k), rows(t, back, q.sql, k)
		if len(a) == 0 {
			t.Errorf("%s: none in the original; the comparison proves nothing", q.what)
		}
		if !slices.Equal(a, b) {
			t.Errorf("%s differ:\noriginal %v\nrestored %v", q.what, a, b)
		}
	}
	// Only the mail after the snapshot is missing: every incident the
	// restored server lacks was opened by a later message.
	var extra int
	back.QueryRow(`SELECT COUNT(*) FROM incident WHERE spool_id > ?`, k).Scan(&extra)
	var later int
	orig.QueryRow(`SELECT COUNT(*) FROM incident WHERE spool_id > ?`, k).Scan(&later)
	if extra != 0 || later != int(total-k) {
		t.Errorf("restored has %d incidents from after the snapshot; the original opened %d for the %d later messages", extra, later, total-k)
	}
	// The admin commands agree on what the restored folder holds.
	list := func(cfg string) string {
		var ids []string
		for _, l := range strings.Split(cvdtest.MustRun(t, t.TempDir(), nil, "incident", "list", "--config", cfg), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "20") {
				ids = append(ids, f[0])
			}
		}
		slices.Sort(ids)
		return strings.Join(ids, " ")
	}
	want := strings.Join(rows(t, orig, `SELECT id FROM incident WHERE spool_id <= ? ORDER BY id`, k), " ")
	if have := list(rcfg); have != want || have == "" {
		t.Errorf("cvd incident list on the restored folder: %q, want %q", have, want)
	}
}

// TestBackupEncryptedToAdmin: 'cvd backup --to' writes an archive only the
// administrator's key opens (gpg --decrypt, as they would), and the
// decrypted archive restores; 'cvd restore' refuses the encrypted file
// itself with the command that decrypts it.
func TestBackupEncryptedToAdmin(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	admin := gpgtest.New(t, "Ada Admin", "ada@example.org", "never")
	keyFile := filepath.Join(t.TempDir(), "ada.asc")
	os.WriteFile(keyFile, admin.Pub, 0o600)
	backup := filepath.Join(t.TempDir(), "cvd-backup.tar.gz.pgp")
	out := cvdtest.MustRun(t, dir, nil, "backup", backup, "--to", keyFile, "--config", cfg)
	if !strings.Contains(out, "encrypted to ") {
		t.Errorf("backup output: %s", out)
	}
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := os.ReadFile(filepath.Join(dir, "keys", "project.asc"))
	if strings.Contains(string(raw), "PRIVATE KEY") || strings.Contains(string(raw), string(priv[40:120])) {
		t.Fatal("the encrypted backup shows the project key in clear")
	}
	code, _, errOut := runCVD(t, dir, nil, "restore", backup, "--dir", filepath.Join(t.TempDir(), "r"))
	if code != 1 || !strings.Contains(errOut, "gpg --decrypt") {
		t.Errorf("restore of the encrypted file: exit %d, %s", code, errOut)
	}
	plain := filepath.Join(t.TempDir(), "cvd-backup.tar.gz")
	project, _ := os.ReadFile(filepath.Join(dir, "keys", "project.pub.asc"))
	admin.Import(project)
	_, status := admin.Run(nil, "--output", plain, "--decrypt", backup)
	if !gpgtest.HasStatus(status, "GOODSIG") {
		t.Errorf("the backup is not signed by the project key:\n%s", status)
	}
	restored := filepath.Join(t.TempDir(), "r")
	cvdtest.MustRun(t, dir, nil, "restore", plain, "--dir", restored)
	if a, b := rows(t, openRO(t, filepath.Join(dir, "cvd.db")), `SELECT name FROM list`), rows(t, openRO(t, filepath.Join(restored, "cvd.db")), `SELECT name FROM list`); !slices.Equal(a, b) {
		t.Errorf("lists %v, restored %v", a, b)
	}
}

// TestRestoreElsewhereWithAbsolutePaths backs up an installation whose
// configuration names its data folder and every key by absolute path,
// moves the original folder away, restores the backup into a new folder
// and runs the server there: it uses the restored keys, acknowledges a
// report, and the coordinator decrypts the team's copy.
func TestRestoreElsewhereWithAbsolutePaths(t *testing.T) {
	dir, cfg := initDir(t, "example.org")
	cora := gpgtest.New(t, "Cora Coordinator", "cora@example.org", "never")
	addTeam(t, dir, cfg, cora)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), `data_dir = "."`, `data_dir = "`+dir+`"`, 1)
	for _, p := range []string{"tls/", "keys/", "dkim/"} {
		text = strings.ReplaceAll(text, `= "`+p, `= "`+dir+"/"+p)
	}
	text = strings.Replace(text, `outbox_dir = "outbox"`, `outbox_dir = "`+dir+`/outbox"`, 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "cvd-backup.tar.gz")
	cvdtest.MustRun(t, dir, nil, "backup", backup, "--config", cfg)
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(moved) })

	restored := filepath.Join(t.TempDir(), "restored")
	out := cvdtest.MustRun(t, t.TempDir(), nil, "restore", backup, "--dir", restored)
	if !strings.Contains(out, "note: the configuration named "+dir+"/keys/cora.asc") {
		t.Errorf("restore does not say it rewrote the key's path:\n%s", out)
	}
	rcfg := filepath.Join(restored, "cvd.toml")
	b, _ = os.ReadFile(rcfg)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, dir+"/") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			t.Errorf("the restored configuration still names the old folder: %s", l)
		}
	}
	s := startCVD(t, t.TempDir(), nil, "--config", rcfg)
	id := report(t, s, restored, "rita@reporter.example", "restored flaw", 1)
	copy := waitOutboxTo(t, restored, "cora@example.org", s.logs)
	plain, _, err := cora.Decrypt(copy.Raw)
	if err != nil || !strings.Contains(plain, "Details.") {
		t.Fatalf("coordinator's copy of incident %s: %v\n%s", id, err, plain)
	}
	if _, err := os.Stat(moved); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the restored server wrote into the old folder %s", dir)
	}
}
