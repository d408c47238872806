package embargo_test

import (
	"context"
	"testing"
)

// TestIntakeAckExactlyOnceAcrossCrash: cvd stops right after the report
// reached the team. The reporter's acknowledgement committed with the
// team's copy; after the restart the reporter gets no second
// acknowledgement and the team no second copy.
func TestIntakeAckExactlyOnceAcrossCrash(t *testing.T) {
	w := newWorld(t)
	cora := w.person("Cora Coordinator", "cora@example.org")
	w.addTeam(cora)
	w.desk.AfterPost = func(string) { panic("crash after the post") }
	report := "From: Rita <rita@reporter.example>\r\nTo: security@example.org\r\nSubject: crash\r\nMessage-ID: <r1@reporter.example>\r\n\r\nIt crashes.\r\n"
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the intake did not reach the crash point")
			}
		}()
		w.deliver("rita@reporter.example", "security@example.org", report)
	}()
	q := w.queue()
	if n := len(find(q, "rita@reporter.example", "ack")); n != 1 {
		t.Fatalf("the reporter has %d acknowledgements with the team's copy, want 1", n)
	}
	if n := len(find(q, cora.Email, "post")); n != 1 {
		t.Fatalf("the team has %d copies, want 1", n)
	}

	w.restart()
	for range 2 {
		if _, _, err := w.router.RouteOnce(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	q = w.queue()
	if n := len(find(q, "rita@reporter.example", "ack")); n != 1 {
		t.Errorf("the reporter got %d acknowledgements after the restart, want 1", n)
	}
	if n := len(find(q, cora.Email, "post")); n != 1 {
		t.Errorf("the team has %d copies after the restart, want 1", n)
	}
	if st := w.spoolState(1); st != "done" {
		t.Errorf("spool state %q", st)
	}
}
