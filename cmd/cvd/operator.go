package main

import (
	"fmt"
	"os"
	"os/user"
	"strings"
	"unicode"
)

// operatorName is who runs this command, as the records name them
// ("cli:NAME"): the --as flag, else the OS user.
var operatorName string

// takeOperator removes "--as NAME" (or --as=NAME, -as) from args, wherever
// it stands before a "--", and sets operatorName.
func takeOperator(args []string) ([]string, error) {
	var out []string
	name := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if v, ok := strings.CutPrefix(a, "--as="); ok {
			name = v
			continue
		}
		if v, ok := strings.CutPrefix(a, "-as="); ok {
			name = v
			continue
		}
		if a == "--as" || a == "-as" {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("--as needs a NAME (who runs the command, for the records): %w", errUsage)
			}
			name = args[i+1]
			i++
			continue
		}
		out = append(out, a)
	}
	if name != "" {
		if err := checkOperator(name); err != nil {
			return nil, fmt.Errorf("--as %q: %v: %w", name, err, errUsage)
		}
	}
	operatorName = name
	return out, nil
}

func checkOperator(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("longer than 64 characters")
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("use a name without spaces or control characters, e.g. --as alice")
		}
	}
	return nil
}

// operator is the name CLI actions are recorded under: --as, else the
// OS user's login name, else $USER.
func operator() string {
	if operatorName != "" {
		return operatorName
	}
	if u, err := user.Current(); err == nil && u.Username != "" && checkOperator(u.Username) == nil {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" && checkOperator(u) == nil {
		return u
	}
	return "operator"
}

// cliActor is the actor string of key and member changes made here.
func cliActor() string { return "cli:" + operator() }
