package mailserver

import "github.com/emersion/go-smtp"

// The SMTP replies cvd gives. go-smtp keeps a reply's code only for an
// unwrapped *smtp.SMTPError, so every refusal is one of these values and the
// text the client sees is generic; the precise reason goes to the log.
var (
	errNoSuchUser      = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such recipient here"}
	errRelayDenied     = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: this server only takes mail for its own addresses"}
	errBadAddress      = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Malformed address"}
	errLocal           = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error, message not accepted; try again later"}
	errLineTooLong     = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Line too long (RFC 5321 allows 1000 characters); message refused"}
	errTransfer        = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Message transfer interrupted; try again later"}
	errTooBigToForward = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message too big: once encrypted for each recipient it would exceed what this server can forward; send a smaller message or a link"}
)
