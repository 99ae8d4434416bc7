// composecheck loads Compose files the way `docker compose config` does — compose-go, the library
// the docker compose plugin is built on: schema validation, interpolation, normalisation and the
// consistency checks (unknown services in depends_on, undefined volumes or networks) — and prints
// the resolved project as YAML. tests/deploy uses it where the compose plugin is not installed;
// it needs no Docker engine.
//
//	composecheck docker/compose.yaml [more.yaml ...]
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck FILE [FILE ...]")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(os.Args[1:], cli.WithOsEnv, cli.WithDotEnv, cli.WithConsistency(true))
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "composecheck:", err)
	os.Exit(1)
}
