# loom: build the compiler (bin/loom) and the runtime library, run the tests.
#   make            bin/loom and build/rel/libloomrt.a
#   make demo       train the bundled tiny GPT-2 on text, then sample from it (README)
#   make test       the test suite: release and ASan+UBSan builds, unit, golden,
#                   bad-input, zoo, ONNX test-data, conformance and short fuzz tiers
#   make fuzz       a longer fuzz run of the ONNX loader (FUZZ_SECONDS=600)
#   make models     re-export the model zoo with PyTorch (installs it first)
#   make bench      loom's inference programs against onnxruntime (bench/README.md)
#   make clean

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla
PROTO   := /usr/include/onnx/onnx.proto
SAN     := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Every .c file under these folders is part of loom; a new file needs no edit here.
LOOM_SRC := $(wildcard frontend/*.c ir/*.c optimizer/*.c codegen/*.c cli/*.c)
RT_SRC   := $(wildcard runtime/*.c)
# cpu kernels: compiled here for the tests and the conformance tier, copied into generated programs
KCPU_SRC := $(wildcard codegen/kernels/cpu/*.c)
THREADS  := -pthread
# Sources loom embeds (build/gen/embedded.c) and copies into every generated program
EMBED_SRC := $(wildcard codegen/kernels/cpu/*.[ch] runtime/*.[ch] runtime/*.cu \
	codegen/kernels/cuda/*.cu codegen/kernels/cuda/*.cuh codegen/kernels/cuda/*.h codegen/kernels/cuda/*.cpp)
INC      := -Iir -Ifrontend -Ioptimizer -Icodegen -Iruntime -Icli -Ibuild/gen

GEN      := build/gen/onnx.pb-c.c
GEN_H    := build/gen/onnx.pb-c.h
EMBED    := build/gen/embedded.c

.PHONY: all setup demo test fuzz models bench clean
all: setup bin/loom build/rel/libloomrt.a build/rel/libloomk_cpu.a

# The set-up script is run again only when it changes.
setup: build/.setup-ok
build/.setup-ok: scripts/setup.sh
	@scripts/setup.sh
	@mkdir -p build && touch $@

# The ONNX parser is generated from the system's onnx.proto; nothing generated is committed.
$(GEN) $(GEN_H): $(PROTO) | build/.setup-ok
	@mkdir -p build/gen
	protoc-c --c_out=build/gen -I$(dir $(PROTO)) $(PROTO)

$(EMBED): scripts/embed.sh $(EMBED_SRC)
	@mkdir -p build/gen
	scripts/embed.sh $@ $(EMBED_SRC)

# Two builds of everything: rel (optimised) and asan (AddressSanitizer + UBSan, for tests).
define BUILD
build/$(1)/%.o: %.c $(GEN_H)
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) $$(WARN) $$(INC) -MMD -MP -c $$< -o $$@
build/$(1)/gen/onnx.pb-c.o: $(GEN)
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) -std=c11 -w $$(INC) -c $$< -o $$@
build/$(1)/gen/embedded.o: $(EMBED) $(GEN_H)
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) $$(WARN) $$(INC) -c $$< -o $$@
build/$(1)/libloom.a: $$(patsubst %.c,build/$(1)/%.o,$$(filter-out cli/%,$$(LOOM_SRC))) build/$(1)/gen/onnx.pb-c.o build/$(1)/gen/embedded.o
	@rm -f $$@
	ar rcs $$@ $$^
build/$(1)/libloomrt.a: $$(patsubst %.c,build/$(1)/%.o,$$(RT_SRC))
	@rm -f $$@
	ar rcs $$@ $$^
build/$(1)/codegen/kernels/cpu/%.o: codegen/kernels/cpu/%.c
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) $$(THREADS) $$(WARN) -Icodegen/kernels/cpu -MMD -MP -c $$< -o $$@
build/$(1)/libloomk_cpu.a: $$(patsubst %.c,build/$(1)/%.o,$$(KCPU_SRC))
	@rm -f $$@
	ar rcs $$@ $$^
# loom links libloomrt (it writes weights.safetensors) and the cpu kernels (their
# workspace-size functions size the memory plan)
build/$(1)/loom: $$(patsubst %.c,build/$(1)/%.o,$$(filter cli/%,$$(LOOM_SRC))) build/$(1)/libloom.a \
		build/$(1)/libloomrt.a build/$(1)/libloomk_cpu.a
	$$(CC) $(2) $$(THREADS) $$^ -o $$@ -lprotobuf-c -lopenblas -llpsolve55 -lcolamd -lm
endef
$(eval $(call BUILD,rel,$(CFLAGS)))
$(eval $(call BUILD,asan,$(SAN)))

bin/loom: build/rel/loom
	@mkdir -p bin
	cp $< $@

-include $(shell find build -name '*.d' 2>/dev/null)

# The main job (README): train the bundled tiny GPT-2 on the licence texts of
# this machine, then sample text from it with the inference program (scripts/demo.sh).
demo: all
	@scripts/demo.sh

test: all build/asan/loom build/asan/libloom.a build/asan/libloomrt.a build/asan/libloomk_cpu.a
	@tests/run.sh

fuzz: all
	@tests/fuzz/run.sh $${FUZZ_SECONDS:-600}

models:
	@scripts/setup.sh models
	@models/export_all.sh

bench: all
	@scripts/setup.sh bench
	.venv/bin/python bench/infer_vs_ort.py --rounds 7 --out bench/results/infer_cpu.md

clean:
	rm -rf build bin
