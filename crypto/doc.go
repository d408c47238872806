// Package crypto is cvd's OpenPGP layer: keys, PGP/MIME (RFC 3156) open
// and seal, signatures, header protection (RFC 9788) and key discovery.
// It knows nothing of SMTP or SQL: it turns bytes into bytes.
//
// Incoming mail goes through Open, which decrypts and verifies and never
// merges decrypted content with unencrypted parts of the same message
// (EFAIL): such parts are dropped and counted. Outgoing list mail goes
// through SealFanout (one copy per member, each encrypted to that member
// only), public announcements through SignClear. Every function takes the
// time to evaluate keys and signatures at; nothing reads a global clock.
// Hostile input is bounded by Limits.
//
// # Fan-out and the shared session key
//
// SealFanout signs the protected inner entity once and encrypts it once,
// with one random session key, into a single encrypted data packet. Each
// copy is that data packet preceded by a single public-key encrypted
// session key packet for its recipient, so no copy names any other
// recipient. The data packet's armor (base64 and CRC24) is also computed
// once. 100 KiB to 50 Curve25519 members costs about 1.3× one gopenpgp
// encryption to all 50 keys at once; a fresh session key per copy costs
// about 6–7× (see BenchmarkSealFanout and BenchmarkSealFanoutPerCopyKey).
//
// The trade-off: a member who learns the session key from their copy can
// decrypt any other member's copy of the same post, and an observer can
// see that copies share their ciphertext. Both are acceptable because all
// copies carry the same content (the body, the header protection and the
// outer header are identical) to members of the same list, who can read it
// anyway. It would not be acceptable for personalised content: anything
// that differs per recipient needs its own SealFanout call (its own session
// key and signature).
package crypto
