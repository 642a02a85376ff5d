package desc

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tinytor/onion/addr"
)

// TestStemDecryptsOurDescriptor has stem (Debian's python3-stem) parse,
// verify and decrypt a descriptor we built. It is skipped where stem is
// not installed.
func TestStemDecryptsOurDescriptor(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import stem.descriptor.hidden_service, cryptography").Run(); err != nil {
		t.Skip("python3-stem not installed")
	}
	f := newFixture(t, nil)
	f.params.Now = time.Now()
	doc, err := Build(f.params)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "desc")
	if err := os.WriteFile(p, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	a, _ := addr.FromKey(f.id.Public())
	out, err := exec.Command(py, "testdata/stem_decrypt.py", p, a.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("stem: %v\n%s", err, out)
	}
	var want strings.Builder
	fmt.Fprintf(&want, "revision 7\nlifetime 180\nformats 2\n")
	for _, ip := range f.params.IntroPoints {
		fmt.Fprintf(&want, "ip %s %s %d\n", base64.StdEncoding.EncodeToString(ip.OnionKey[:]),
			base64.StdEncoding.EncodeToString(ip.EncKey[:]), len(ip.LinkSpecs))
	}
	if string(out) != want.String() {
		t.Errorf("stem saw:\n%s\nwant:\n%s", out, want.String())
	}
}
