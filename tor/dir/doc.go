// Package dir handles Tor's directory documents for a client: authority key
// certificates, the microdesc-flavoured consensus and microdescriptors
// (parse and verify, dir-spec sections 1.2, 3.1, 3.3 and 3.4.1), the
// HTTP/1.0 requests made over a BEGIN_DIR stream (section 4 and 6), the
// on-disk cache with C tor's file names, and the consensus fetch schedule
// (section 5.1).
//
// Parsed documents keep only what a client needs, in compact form: the
// router this runs on has little memory, so nothing retains the document
// text unless stated.
package dir
