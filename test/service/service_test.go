// Package service checks what an administrator installs cvd with: the
// systemd units in contrib/systemd (systemd-analyze verify, when systemd
// is on the machine), the static binary, and the Dockerfile (built only
// when a Docker daemon answers).
package service

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = "../.."

// unitSettings returns the Key=Value lines of a unit file.
func unitSettings(t *testing.T, file string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if ok {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// TestSystemdUnitSandbox: the service runs unprivileged, with a read-only
// system, its own state folder, and no capability but binding low ports.
func TestSystemdUnitSandbox(t *testing.T) {
	s := unitSettings(t, filepath.Join(root, "contrib/systemd/cvd.service"))
	for k, want := range map[string]string{
		"User":                  "cvd",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"NoNewPrivileges":       "yes",
		"StateDirectory":        "cvd",
		"PrivateTmp":            "yes",
		"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
	} {
		if got := s[k]; len(got) != 1 || got[0] != want {
			t.Errorf("cvd.service: %s = %v, want exactly %q", k, got, want)
		}
	}
	if ex := s["ExecStart"]; len(ex) != 1 || !strings.Contains(ex[0], "cvd serve --config /var/lib/cvd/cvd.toml") {
		t.Errorf("cvd.service: ExecStart = %v", ex)
	}
	b := unitSettings(t, filepath.Join(root, "contrib/systemd/cvd-backup.service"))
	if ex := b["ExecStart"]; len(ex) != 1 || !strings.Contains(ex[0], "cvd backup ") || !strings.Contains(ex[0], "--to ") {
		t.Errorf("cvd-backup.service: ExecStart = %v", ex)
	}
	if c := b["CapabilityBoundingSet"]; len(c) != 1 || c[0] != "" {
		t.Errorf("cvd-backup.service: CapabilityBoundingSet = %v, want none", c)
	}
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify on the units, with
// ExecStart pointing at a built cvd; any warning fails.
func TestSystemdAnalyzeVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cvd")
	build(t, bin, "CGO_ENABLED=0")
	var units []string
	for _, name := range []string{"cvd.service", "cvd-backup.service", "cvd-backup.timer"} {
		b, err := os.ReadFile(filepath.Join(root, "contrib/systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/cvd"), []byte(bin))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, filepath.Join(dir, name))
	}
	cmd := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning")
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func build(t *testing.T, bin string, env ...string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/cvd-project/cvd/cmd/cvd")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// TestStaticBinary: the binary the Dockerfile builds (CGO_ENABLED=0) is
// static, runs, and the Dockerfile keeps it non-root with a data volume.
func TestStaticBinary(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0 go build", "\nUSER nonroot", "\nVOLUME [\"/data\"]"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile has no %q", want)
		}
	}
	bin := filepath.Join(t.TempDir(), "cvd")
	build(t, bin, "CGO_ENABLED=0")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the CGO_ENABLED=0 binary asks for a dynamic loader")
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !regexp.MustCompile(`^cvd \S+ \(schema \d+, go`).Match(out) {
		t.Errorf("cvd version: %v %q", err, out)
	}
}

// TestDockerBuild builds the image and runs 'cvd version' and 'cvd init'
// in it, when a Docker daemon is reachable.
func TestDockerBuild(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker is not installed")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("no Docker daemon answers")
	}
	tag := "cvd-test:" + strings.ToLower(filepath.Base(t.TempDir()))
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	docker("build", "--build-arg", "VERSION=test", "-t", tag, root)
	defer exec.Command("docker", "rmi", "-f", tag).Run()
	if out := docker("run", "--rm", tag, "version"); !strings.HasPrefix(out, "cvd test ") {
		t.Errorf("cvd version in the image: %q", out)
	}
	if u := strings.TrimSpace(docker("image", "inspect", "-f", "{{.Config.User}}", tag)); u == "" || u == "root" || u == "0" {
		t.Errorf("the image runs as %q", u)
	}
	vol := "cvd-test-" + strings.ToLower(filepath.Base(t.TempDir()))
	defer exec.Command("docker", "volume", "rm", "-f", vol).Run()
	if out := docker("run", "--rm", "-v", vol+":/data", tag, "init", "--dir", "/data", "--domain", "example.org"); !strings.Contains(out, "wrote /data/cvd.db") {
		t.Errorf("cvd init in the image:\n%s", out)
	}
}
