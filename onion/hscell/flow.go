package hscell

import (
	"crypto/ed25519"

	"tinytor/onion/hsntor"
	"tinytor/tor/errfmt"
)

// BuildIntroduce1 makes a complete INTRODUCE1 body for the introduction
// point whose auth key is authKey: the header, then the ENCRYPTED section
// holding p (padded as C tor pads), encrypted and MACed by c.
func BuildIntroduce1(c *hsntor.Client, authKey ed25519.PublicKey, p *IntroducePlaintext) ([]byte, error) {
	header, err := IntroduceHeader(authKey, nil)
	if err != nil {
		return nil, err
	}
	pt, err := p.Encode(len(header))
	if err != nil {
		return nil, err
	}
	return append(header, c.Encrypt(header, pt)...), nil
}

// OpenIntroduce2 parses an INTRODUCE2 body received on the introduction
// circuit of s, checks that it names s's auth key, and decrypts and parses
// its ENCRYPTED section, trying each subcredential (those of the service's
// live descriptors). Check the replay cache with in.Encrypted before
// calling s.Respond.
func OpenIntroduce2(body []byte, s *hsntor.Service, subcreds [][32]byte) (*Introduce, *hsntor.Introduction, *IntroducePlaintext, error) {
	in, err := ParseIntroduce(body)
	if err != nil {
		return nil, nil, nil, err
	}
	if !in.AuthKey.Equal(s.AuthKey) {
		return nil, nil, nil, errfmt.Errorf("INTRODUCE2: %w: auth key is not this introduction point's", ErrMalformed)
	}
	intro, err := s.Decrypt(in.Header, in.Encrypted, subcreds)
	if err != nil {
		return nil, nil, nil, errfmt.Errorf("INTRODUCE2: %w", err)
	}
	p, err := ParseIntroducePlaintext(intro.Plaintext)
	if err != nil {
		return nil, nil, nil, err
	}
	return in, intro, p, nil
}
