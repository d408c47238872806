package load

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/internal/cvdtest"
	"github.com/cvd-project/cvd/lists"
	"github.com/cvd-project/cvd/store"
)

// BenchmarkMemory measures cvd's peak RSS above idle while it takes one
// large message, as a multiple of the message's size on the wire:
//
//   - report: a 25 MiB plain report (a base64 attachment) to security@,
//     until its incident is opened, the report posted to the team and
//     the team's copy delivered (to the outbox);
//   - post/members=N: a 25 MiB signed and encrypted post by a member of an
//     incident list of N members (each with a Curve25519 key), until the
//     post is distributed and every copy delivered (to the outbox).
//
// Each case starts a fresh cvd (default configuration, one coordinator
// with a key), reads its idle VmRSS, resets VmHWM (/proc/PID/clear_refs),
// sends, waits until the message is routed (and a post's copies
// delivered) and reads VmHWM. CVD_LOAD_RUNS
// (3) runs each; the figures are medians. CVD_LOAD_MEMLIMIT, when set, is
// passed as GOMEMLIMIT.
//
//	CVD_LOAD=1 go test -run '^$' -bench Memory -benchtime 1x ./test/load
func BenchmarkMemory(b *testing.B) {
	skipUnlessLoad(b)
	runs := envInt(b, "CVD_LOAD_RUNS", 3)
	b.Run("report", func(b *testing.B) {
		memRuns(b, runs, func(b *testing.B) memResult { return memReport(b) })
	})
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("post/members=%d", n), func(b *testing.B) {
			memRuns(b, runs, func(b *testing.B) memResult { return memPost(b, n) })
		})
	}
}

// memSize is the size of the large message on the wire: just under the
// default max_message_size (25 MiB).
const memSize = 25<<20 - 64<<10

type memResult struct {
	idle, peak, size int64
	note             string
}

func memRuns(b *testing.B, runs int, run func(*testing.B) memResult) {
	for range b.N {
		var rs []memResult
		for i := range runs {
			r := run(b)
			b.Logf("run %d: idle %.1f MiB, peak %.1f MiB, %.1f MiB above idle for a %.1f MiB message (%.2fx)%s",
				i, mib(r.idle), mib(r.peak), mib(r.peak-r.idle), mib(r.size), float64(r.peak-r.idle)/float64(r.size), r.note)
			rs = append(rs, r)
		}
		ratio := func(r memResult) float64 { return float64(r.peak-r.idle) / float64(r.size) }
		slices.SortFunc(rs, func(x, y memResult) int {
			return int(1000*ratio(x)) - int(1000*ratio(y))
		})
		m := rs[len(rs)/2]
		idles := make([]int64, len(rs))
		for i, r := range rs {
			idles[i] = r.idle
		}
		slices.Sort(idles)
		b.ReportMetric(ratio(m), "x-msg-above-idle")
		b.ReportMetric(mib(m.peak-m.idle), "MiB-above-idle")
		b.ReportMetric(mib(idles[len(idles)/2]), "idle-MiB")
		b.ReportMetric(mib(m.peak), "peak-MiB")
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// memCVD initialises an installation with one coordinator with a key and
// returns it with the project key.
func memCVD(b *testing.B) (dir, cfg string, project *crypto.Key) {
	dir, cfg = newCVD(b, 4)
	_, pub, err := crypto.GenerateKey("Cora Coordinator", "cora@"+domain, crypto.KindCurve25519)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "cora.asc"), pub, 0o600); err != nil {
		b.Fatal(err)
	}
	cvdtest.AppendConfig(b, cfg, "[[embargo.team]]\nname = \"Cora Coordinator\"\nemail = \"cora@"+domain+"\"\nkey_file = \"keys/cora.asc\"")
	priv, err := os.ReadFile(filepath.Join(dir, "keys", "project.asc"))
	if err != nil {
		b.Fatal(err)
	}
	if project, err = crypto.ParseKey(priv); err != nil {
		b.Fatal(err)
	}
	return dir, cfg, project
}

// memStart starts cvd, lets it settle and returns it with its idle RSS,
// its peak RSS reset to that.
func memStart(b *testing.B, dir, cfg string) (*cvdtest.Server, int64) {
	var env []string
	if v := os.Getenv("CVD_LOAD_MEMLIMIT"); v != "" {
		env = append(env, "GOMEMLIMIT="+v)
	}
	s := cvdtest.Start(b, dir, env, "--config", cfg)
	time.Sleep(2 * time.Second)
	idle := procStatus(b, s.PID(), "VmRSS")
	// Writing 5 resets VmHWM to the current RSS (Linux 4.0).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.PID()), []byte("5"), 0); err != nil {
		b.Logf("peak RSS not reset (%v): the peak may be the start's", err)
	}
	return s, idle
}

// procStatus reads a kB field of /proc/PID/status, in bytes.
func procStatus(b *testing.B, pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(raw)
	if m == nil {
		b.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// base64Lines is n random bytes in base64, in 76-character CRLF lines.
func base64Lines(n int) string {
	raw := make([]byte, n)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var sb strings.Builder
	sb.Grow(len(enc) * 78 / 76)
	for len(enc) > 76 {
		sb.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	sb.WriteString(enc + "\r\n")
	return sb.String()
}

func sendOne(b *testing.B, addr, from, to, msg string) {
	c, err := smtp.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := send(c, from, to, msg); err != nil {
		b.Fatalf("send %d bytes to %s: %v", len(msg), to, err)
	}
	c.Quit()
}

func memReport(b *testing.B) memResult {
	dir, cfg, _ := memCVD(b)
	head := "From: Rita <rita@reporter.example>\r\nTo: security@" + domain + "\r\nSubject: big report\r\nMessage-ID: <big@reporter.example>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe crash dump is attached.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"core\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	tail := "--b1--\r\n"
	body := base64Lines((memSize - len(head) - len(tail)) * 76 / 78 * 3 / 4)
	msg := head + body + tail
	s, idle := memStart(b, dir, cfg)
	b.ResetTimer()
	sendOne(b, s.Addr, "rita@reporter.example", "security@"+domain, msg)
	at250 := procStatus(b, s.PID(), "VmHWM")
	waitRoutedDir(b, dir, 1)
	waitDeliveredDir(b, dir)
	b.StopTimer()
	peak := procStatus(b, s.PID(), "VmHWM")
	note := fmt.Sprintf("; %.1f MiB above idle by the 250", mib(at250-idle))
	if n := postCopies(b, dir); n > 0 {
		note += fmt.Sprintf("; posted, %d copies queued", n)
	}
	s.Kill(b)
	return memResult{idle: idle, peak: peak, size: int64(len(msg)), note: note}
}

func memPost(b *testing.B, members int) memResult {
	dir, cfg, project := memCVD(b)
	// An incident to post to.
	s := cvdtest.Start(b, dir, nil, "--config", cfg)
	sendOne(b, s.Addr, "rita@reporter.example", "security@"+domain, report("small@reporter.example"))
	id := waitIncident(b, dir)
	waitRoutedDir(b, dir, 1)
	s.Stop(b)
	poster := addMembers(b, dir, project, id, members)

	var outer textproto.Header
	outer.Set("From", "Member 0 <member0@members.example>")
	outer.Set("To", "security+"+id+"@"+domain)
	outer.Set("Subject", "big post")
	outer.Set("Message-Id", "<bigpost@members.example>")
	seal := func(n int) []byte {
		inner := "Content-Type: application/octet-stream; name=\"core\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64Lines(n)
		sealed, err := crypto.Seal([]byte(inner), outer, poster, project.Public(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		return sealed
	}
	n := memSize / 2
	msg := seal(n)
	msg = seal(int(float64(n) * float64(memSize) / float64(len(msg)) * 0.998))
	if len(msg) > memSize {
		b.Fatalf("sealed post of %d bytes, want at most %d", len(msg), memSize)
	}

	s, idle := memStart(b, dir, cfg)
	b.ResetTimer()
	sendOne(b, s.Addr, "member0@members.example", "security+"+id+"@"+domain, string(msg))
	at250 := procStatus(b, s.PID(), "VmHWM")
	waitRoutedDir(b, dir, 2)
	// The peak includes the delivery of every copy (to the outbox).
	waitDeliveredDir(b, dir)
	b.StopTimer()
	peak := procStatus(b, s.PID(), "VmHWM")
	copies := postCopies(b, dir)
	s.Kill(b)
	if want := members - 1; copies < want {
		b.Errorf("%d copies of the post queued, want at least %d", copies, want)
	}
	return memResult{idle: idle, peak: peak, size: int64(len(msg)), note: fmt.Sprintf("; %.1f MiB above idle by the 250; %d copies queued", mib(at250-idle), copies)}
}

// addMembers adds n members with keys to the list id, directly in the
// database; it returns member 0's private key.
func addMembers(b *testing.B, dir string, project *crypto.Key, id string, n int) *crypto.Key {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	svc := &lists.Service{DB: db, Domain: domain, Key: project}
	var poster *crypto.Key
	for i := range n {
		email := fmt.Sprintf("member%d@members.example", i)
		priv, pub, err := crypto.GenerateKey(fmt.Sprintf("Member %d", i), email, crypto.KindCurve25519)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			if poster, err = crypto.ParseKey(priv); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := svc.AddMember(ctx, id, lists.NewMember{Email: email, Role: lists.RoleDownstream, Key: pub, Actor: "load"}); err != nil {
			b.Fatal(err)
		}
	}
	return poster
}

// waitRoutedDir waits until n spooled messages are routed.
func waitRoutedDir(b *testing.B, dir string, n int) {
	db, err := store.Open(context.Background(), filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	waitRouted(b, db, n, 10*time.Minute)
}

// waitDeliveredDir waits until no queued mail waits or is being sent.
func waitDeliveredDir(b *testing.B, dir string) {
	db, err := store.Open(context.Background(), filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var n int
		err := db.Read(context.Background(), func(tx *sql.Tx) error {
			return tx.QueryRow(`SELECT COUNT(*) FROM queue WHERE state IN ('queued', 'sending')`).Scan(&n)
		})
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d rows still to deliver after 10 minutes", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postCopies counts the copies of list posts queued.
func postCopies(b *testing.B, dir string) int {
	db, err := store.Open(context.Background(), filepath.Join(dir, "cvd.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.Read(context.Background(), func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT COUNT(*) FROM queue q JOIN queue_msg m ON m.id = q.msg_id WHERE m.kind = 'post'`).Scan(&n)
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
