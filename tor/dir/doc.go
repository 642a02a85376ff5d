// Package dir handles Tor's directory documents for a client: authority key
// certificates, the microdesc-flavoured consensus and microdescriptors
// (parse and verify, dir-spec sections 1.2, 3.1, 3.3, 3.4.1 and 3.9.2),
// the HTTP/1.0 requests made over a BEGIN_DIR stream (sections 4 and 6),
// the on-disk cache with C tor's file names, the consensus fetch
// schedule (section 5.1), and consensus diffs (section 4.5 and appendix
// E: DiffRequestHeader asks for one, ApplyDiff applies it).
//
// A bootstrap goes:
//
//	body, err := dir.Get(stream, dir.AllCertsPath, limit)
//	certs, err := dir.ParseAuthCerts(body)            // then cert.Verify(now)
//	body, err = dir.Get(stream, dir.ConsensusPath(authorities), limit)
//	cons, err := dir.ParseConsensus(body)
//	err = cons.Verify(certs, authorities, now)          // or CheckSignatures
//	                                                    // for MissingCerts
//	paths, batches := dir.MicrodescPaths(digests)       // from cons.Relays
//	batch, err := dir.ParseRequestedMicrodescs(body, batches[i])
//	next := dir.NextConsensusFetch(cons, now, rng)
//
// with Cache saving each verified document and Cache.Load re-verifying
// them at start-up.
//
// Parsed documents keep only what a client needs, in compact form (the
// router this runs on has little memory): nothing retains the document
// text, except AuthCert.Raw.
package dir
