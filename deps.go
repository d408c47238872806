//go:build tools

package cvd

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/ProtonMail/gopenpgp/v2/crypto"
	_ "github.com/emersion/go-imap/v2"
	_ "github.com/emersion/go-message"
	_ "github.com/emersion/go-smtp"
	_ "modernc.org/sqlite"
)
