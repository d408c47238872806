package mta

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cvd-project/cvd/internal/cvdtest"
)

// requirePostfix skips the test when a private Postfix instance cannot run
// here (it needs root, the postfix user and the postfix package), unless
// CI is set: there the test must run, so it fails instead.
func requirePostfix(t *testing.T) (bin string, uid int) {
	t.Helper()
	miss := func(why string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but %s: the Postfix integration test cannot run", why)
		}
		t.Skipf("skipped: %s (a private Postfix instance needs root, the postfix user and the postfix package; CI runs it)", why)
	}
	if os.Geteuid() != 0 {
		miss("not running as root")
	}
	bin, err := exec.LookPath("postfix")
	if err != nil {
		bin = "/usr/sbin/postfix"
		if _, err := os.Stat(bin); err != nil {
			miss("postfix is not installed (apt-get install postfix)")
		}
	}
	u, err := user.Lookup("postfix")
	if err != nil {
		miss("there is no postfix user")
	}
	uid, _ = strconv.Atoi(u.Uid)
	return bin, uid
}

// mailUID owns the virtual mailboxes (virtual_uid_maps in the README).
const mailUID = 5000

// postfix is a private Postfix instance on a loopback port: its own
// configuration, queue, data and mailbox folders; never the system's.
type postfix struct {
	bin  string
	name string
	dir  string
	etc  string
	mail string // virtual_mailbox_base
	Addr string
}

// newPostfix writes an instance's configuration: the scaffolding for a
// private instance (folders, loopback port, host name) followed by mainCf,
// whose /etc/postfix/ and /var/mail/vhosts become the instance's own
// folders, and files into its etc folder. It does not start it.
func newPostfix(t *testing.T, bin string, ownerUID int, name, hostname, mainCf string, files map[string]string) *postfix {
	t.Helper()
	dir, err := os.MkdirTemp("", "cvd-postfix-"+name)
	if err != nil {
		t.Fatal(err)
	}
	p := &postfix{bin: bin, name: name, dir: dir, etc: filepath.Join(dir, "etc"), mail: filepath.Join(dir, "mail"), Addr: freeAddr(t)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Postfix %s log (last 6 KB):\n%s", name, tail(p.log(), 6<<10))
		}
		p.ctl("stop")
		for i := 0; i < 100 && p.running(); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		os.RemoveAll(dir)
	})
	for _, d := range []string{"etc", "queue", "data", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "data"), ownerUID, -1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p.mail, mailUID, mailUID); err != nil {
		t.Fatal(err)
	}
	scaffold := fmt.Sprintf(`# A private instance on loopback (test scaffolding).
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = %[2]s
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
maillog_file_prefixes = %[1]s
maillog_file = %[1]s/maillog
`, dir, hostname)
	master := p.Addr + " inet n - n - - smtpd\n" + `pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
smtp unix - - n - - smtp
relay unix - - n - - smtp
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`
	// The README's paths, made this instance's.
	mainCf = strings.NewReplacer("/etc/postfix/", p.etc+"/", "/var/mail/vhosts", p.mail).Replace(mainCf)
	files["main.cf"] = scaffold + "\n" + mainCf
	files["master.cf"] = master
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(p.etc, f), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *postfix) ctl(args ...string) (string, error) {
	out, err := exec.Command(p.bin, append([]string{"-c", p.etc}, args...)...).CombinedOutput()
	return string(out), err
}

func (p *postfix) running() bool {
	_, err := p.ctl("status")
	return err == nil
}

func (p *postfix) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// start starts the instance and waits until it listens.
func (p *postfix) start(t *testing.T) {
	t.Helper()
	if out, err := p.ctl("start"); err != nil {
		t.Fatalf("postfix %s start: %v\n%s%s", p.name, err, out, p.log())
	}
	waitFor(t, "Postfix "+p.name+" listening on "+p.Addr, 20*time.Second, func() bool {
		c, err := net.Dial("tcp", p.Addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, p.log)
}

// stop stops the instance (postfix stop) and waits until it is gone.
func (p *postfix) stop(t *testing.T) {
	t.Helper()
	if out, err := p.ctl("stop"); err != nil {
		t.Fatalf("postfix %s stop: %v\n%s", p.name, err, out)
	}
	waitFor(t, "Postfix "+p.name+" stopped", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", p.Addr)
		if err == nil {
			c.Close()
		}
		return err != nil && !p.running()
	}, p.log)
}

// idle reports whether nothing waits in the instance's queue.
func (p *postfix) idle() bool {
	n := 0
	for _, q := range []string{"incoming", "active", "deferred", "maildrop", "hold"} {
		filepath.WalkDir(filepath.Join(p.dir, "queue", q), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
	}
	return n == 0
}

// mailbox returns the messages Postfix delivered to the Maildir at path
// (as in virtual_mailbox_maps, under virtual_mailbox_base), oldest first.
func (p *postfix) mailbox(t *testing.T, path string) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(p.mail, path, "new", "*"))
	sort.Strings(files)
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// waitMailbox waits until the Maildir at path holds at least n messages.
func (p *postfix) waitMailbox(t *testing.T, path string, n int, diag func() string) [][]byte {
	t.Helper()
	var got [][]byte
	waitFor(t, fmt.Sprintf("%d message(s) in %s's Maildir %s", n, p.name, path), time.Minute, func() bool {
		got = p.mailbox(t, path)
		return len(got) >= n
	}, func() string { return diag() + "\n" + p.log() })
	return got
}

// waitFor polls cond until it holds or the time is up; then it fails with
// what it waited for and diag's output.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s\n%s", limit, what, tail(diag(), 8<<10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return cvdtest.FreeAddr(t)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// readmeBlocks returns the code blocks of the README's section "Behind an
// MTA (Postfix)", by the file each names in its first line ("# PATH").
func readmeBlocks(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const title = "### Behind an MTA (Postfix)\n"
	i := bytes.Index(b, []byte(title))
	if i < 0 {
		t.Fatalf("README.md has no section %q", strings.TrimSpace(title))
	}
	sec := string(b[i+len(title):])
	if j := regexp.MustCompile(`(?m)^##`).FindStringIndex(sec); j != nil {
		sec = sec[:j[0]]
	}
	blocks := map[string]string{}
	for _, m := range regexp.MustCompile("(?ms)^```[a-z]*\n(.*?)^```").FindAllStringSubmatch(sec, -1) {
		first, _, _ := strings.Cut(m[1], "\n")
		f := strings.Fields(strings.TrimPrefix(first, "#"))
		if !strings.HasPrefix(first, "# /") || len(f) == 0 {
			t.Fatalf("README block does not start with \"# /PATH\":\n%s", m[1])
		}
		blocks[f[0]] = m[1]
	}
	for _, f := range []string{"/etc/cvd/cvd.toml", "/etc/postfix/main.cf", "/etc/postfix/virtual_mailboxes", "/etc/postfix/transport"} {
		if blocks[f] == "" {
			t.Fatalf("README section %q has no block for %s", strings.TrimSpace(title), f)
		}
	}
	return blocks
}

// applyTOML sets each "key = value" of block (under its [section]) in the
// cvd configuration file cfg, replacing the key's line in that section,
// commented out or not.
func applyTOML(t *testing.T, cfg, block string) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	section := ""
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = strings.Trim(l, "[]")
		default:
			key, _, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("README cvd.toml line %q", l)
			}
			key = strings.TrimSpace(key)
			h := regexp.MustCompile(`(?m)^\[` + regexp.QuoteMeta(section) + `\][ \t]*$`).FindStringIndex(text)
			if h == nil {
				t.Fatalf("%s has no section [%s]", cfg, section)
			}
			rest := text[h[1]:]
			end := len(rest)
			if n := regexp.MustCompile(`(?m)^\[`).FindStringIndex(rest); n != nil {
				end = n[0]
			}
			k := regexp.MustCompile(`(?m)^[ \t]*#?[ \t]*` + regexp.QuoteMeta(key) + `[ \t]*=.*$`).FindStringIndex(rest[:end])
			if k == nil {
				t.Fatalf("%s has no key %s in [%s]", cfg, key, section)
			}
			text = text[:h[1]] + rest[:k[0]] + l + rest[k[1]:]
		}
	}
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
