package lists

import (
	"reflect"
	"testing"
)

func TestParseKeywords(t *testing.T) {
	kws, rest := ParseKeywords("\nX-List: 2026-001\r\nx-add-member: dev@example.org fixer\n\nx-list-members\nHello,\nx-not: a keyword here\n")
	want := []Keyword{{"list", "2026-001"}, {"add-member", "dev@example.org fixer"}, {"list-members", ""}}
	if !reflect.DeepEqual(kws, want) || rest != "Hello,\nx-not: a keyword here\n" {
		t.Errorf("got %+v, rest %q", kws, rest)
	}
	if kws, rest := ParseKeywords("Hi\nx-list: 1\n"); kws != nil || rest != "Hi\nx-list: 1\n" {
		t.Errorf("keywords after text: %+v %q", kws, rest)
	}
	if kws, _ := ParseKeywords("x-: nothing\n"); kws != nil {
		t.Errorf("empty name accepted: %+v", kws)
	}
}
