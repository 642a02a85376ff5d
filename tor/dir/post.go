package dir

import (
	"io"
	"strconv"

	"tinytor/tor/errfmt"
)

// Post sends an HTTP/1.0 POST of body to path over rw (a BEGIN_DIR
// stream), as C tor uploads onion service descriptors to HSDirs
// (POST /tor/hs/3/publish, rend-spec-v3 2.2.6), reads the response until
// EOF and returns its body. A status other than 200 gives a *StatusError.
func Post(rw io.ReadWriter, path string, body []byte, maxBody int64) ([]byte, error) {
	if !validPath(path) {
		return nil, errfmt.Errorf("directory upload: invalid path %q", path)
	}
	req := make([]byte, 0, len(body)+128)
	req = append(req, "POST "...)
	req = append(req, path...)
	req = append(req, " HTTP/1.0\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, body...)
	return roundTrip(rw, "directory upload", path, req, maxBody)
}
