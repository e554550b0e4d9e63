package redirect

//go:generate go tool bpf2go -cc clang -target bpfel -type config bpf redirect.c -- -I/usr/include/x86_64-linux-gnu -Wall -Werror
