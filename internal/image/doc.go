// Package image holds banger's guest image domain type and its pure rules:
// names, the files an image is made of, the staleness rule for images
// built from a package manifest, and the form of the apt proxy a build may
// use. It does no I/O beyond hashing files.
package image
