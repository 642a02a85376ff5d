// Command tinytor is a Tor client for embedded Linux routers.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "tinytor: not wired yet")
	os.Exit(2)
}
