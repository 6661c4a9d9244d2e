# big-iron: build the bare-metal hyperkernel image, run it in emulators, test.
#
#   make qemu        one node in QEMU (KVM where the host has it, else TCG)
#   make bochs       one node in Bochs (VMX and EPT emulated)
#   make cluster     NODES nodes (default 2) in EMU (qemu or bochs) on one
#                    Ethernet segment, you on the first node's console;
#                    with GUEST=linux it also starts Debian's Linux as one
#                    VM with a vCPU on every node (EMU=bochs here: VT-x);
#                    DVM="numa=on ..." adds arguments to its dvm start
#   make test        go vet, go test ./..., then the end-to-end tier
#   make image       build/bigiron.elf, .mb, .iso and build/pxe/
#   make deps        install the emulators and ISO tools (Debian packages)
#   make toolchain   build the tamago Go distribution; offline from
#                    TAMAGO_GO_SRC=path (a .tar.xz of its source, or a
#                    checkout of its tag) when it is not built yet
#   make rootfs      build/guest/rootfs.img: a Debian root file system for
#                    a guest on a network disk (as root; needs mmdebstrap
#                    or debootstrap), root's ssh key in build/guest/rootfs_key
#
# PLATFORM=pc (default: BIOS and UEFI machines, Bochs, QEMU pc/q35) or microvm
# (QEMU microvm). CPUS and MEM size the emulated node.

PLATFORM ?= pc
CPUS     ?= 2
MEM      ?= 1G
NODES    ?= 2
EMU      ?= qemu
BUILD    ?= build

GO       ?= go
# `go tool tamago` runs the tamago Go distribution paired with the tamago
# module version pinned in go.mod, fetching and building it on first use.
# It must not see GOOS=tamago itself, so call its binary directly.
# tools/toolchain builds that distribution first from TAMAGO_GO_SRC where
# given (machines without internet), and rebuilds a half-built one.
TAMAGO    = $(shell $(GO) tool -n tamago)
TAMAGO_GO_SRC ?=
# The board adds a function to the distribution's runtime package
# (machine/board/x86/_runtime, see smp.go): tools/toolchain writes the
# go build -overlay that adds it, and every tamago build and vet uses it.
OVERLAY   = $(abspath $(BUILD))/runtime-overlay.json
REVISION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

TAGS_pc      := linkcpuinit,linkprintk
TAGS_microvm := linkcpuinit,linkprintk,microvm
TAGS         := $(TAGS_$(PLATFORM))
# GUEST=linux embeds a guest operating system (build/guest/image: Debian's
# kernel and our u-root initramfs) for `vm boot linux`.
GUEST    ?=
ifeq ($(GUEST),linux)
TAGS         := $(TAGS),guestlinux
GUEST_IMAGE  := build/guest/image/vmlinuz
endif
LDFLAGS      := -T 0x10010000 -R 0x1000 -X main.revision=$(REVISION)

DEBS := qemu-system-x86 ovmf bochs bochsbios vgabios grub-pc-bin grub-efi-amd64-bin xorriso mtools spin acpica-tools qemu-utils nbdkit mmdebstrap iperf3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# ACCEL=kvm or tcg chooses QEMU's accelerator; the default takes KVM
# where the host has hardware KVM (/dev/kvm with kvm_intel or kvm_amd
# loaded: a /dev/kvm served by the software kvm_pvm cannot run the image).
ACCEL    ?= $(if $(and $(wildcard /dev/kvm),$(wildcard /sys/module/kvm_intel /sys/module/kvm_amd)),kvm,tcg)
ifeq ($(ACCEL),kvm)
QEMU_ACCEL := -enable-kvm -cpu host
else
QEMU_ACCEL := -cpu max
endif

QEMU_pc      := qemu-system-x86_64 -machine q35 $(QEMU_ACCEL) -smp $(CPUS) -m $(MEM) \
	-display none -serial stdio -monitor none -no-reboot \
	-device e1000e,netdev=n0 -netdev user,id=n0 -kernel $(BUILD)/bigiron.elf
QEMU_microvm := qemu-system-x86_64 -machine microvm,pit=on,pic=off,rtc=on,acpi=on \
	$(QEMU_ACCEL) -smp $(CPUS) -m $(MEM) -display none -serial stdio -monitor none -no-reboot \
	-global virtio-mmio.force-legacy=false -device virtio-net-device,netdev=n0 -netdev user,id=n0 \
	-kernel $(BUILD)/bigiron.elf

.PHONY: all image elf qemu bochs cluster test test-unit test-e2e deps vet clean guest toolchain rootfs

all: image

image: $(BUILD)/bigiron.elf $(BUILD)/bigiron.mb $(BUILD)/bigiron.iso $(BUILD)/pxe/boot.ipxe

elf: $(BUILD)/bigiron.elf

toolchain:
	$(GO) run ./tools/toolchain $(if $(TAMAGO_GO_SRC),-src "$(TAMAGO_GO_SRC)") -overlay $(OVERLAY)

$(BUILD)/bigiron.elf: FORCE toolchain $(GUEST_IMAGE)
	@mkdir -p $(BUILD)
	GOOS=tamago GOARCH=amd64 GOOSPKG=github.com/usbarmory/tamago \
		$(TAMAGO) build -overlay $(OVERLAY) -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $@ .

$(BUILD)/bigiron.mb: $(BUILD)/bigiron.elf
	$(GO) run ./tools/mkimage -multiboot -o $@ $<

$(BUILD)/bigiron.iso: $(BUILD)/bigiron.mb qemu/grub.cfg
	rm -rf $(BUILD)/iso && mkdir -p $(BUILD)/iso/boot/grub
	cp $(BUILD)/bigiron.mb $(BUILD)/iso/boot/bigiron.mb
	cp qemu/grub.cfg $(BUILD)/iso/boot/grub/grub.cfg
	grub-mkrescue -o $@ $(BUILD)/iso 2>$(BUILD)/grub-mkrescue.log || (cat $(BUILD)/grub-mkrescue.log; false)

$(BUILD)/pxe/boot.ipxe: $(BUILD)/bigiron.elf
	$(GO) run ./tools/mkimage -pxe $(BUILD)/pxe $<

qemu: deps image
	$(QEMU_$(PLATFORM))

bochs: deps image
	bochs -q -f qemu/bochsrc.txt -rc qemu/bochs.rc 'com1: enabled=1, mode=term, dev=/dev/tty'

cluster: deps image
	$(GO) run ./tools/cluster -nodes $(NODES) -emu $(EMU) -build $(BUILD) -accel $(ACCEL) $(if $(GUEST),-guest $(GUEST)) $(if $(DVM),-dvm "$(DVM)")

vet: toolchain
	$(GO) vet ./...
	GOOS=tamago GOARCH=amd64 GOOSPKG=github.com/usbarmory/tamago $(TAMAGO) vet -overlay $(OVERLAY) -tags $(TAGS_pc) . ./machine/board/... ./hyperkernel/hv
	GOOS=tamago GOARCH=amd64 GOOSPKG=github.com/usbarmory/tamago $(TAMAGO) vet -overlay $(OVERLAY) -tags $(TAGS_microvm) .

test: vet
	$(GO) test ./...
	$(MAKE) test-e2e

# The end-to-end tier boots the real image in QEMU and Bochs. Each test
# skips, naming what is missing, where a tool is absent.
test-e2e:
	BIGIRON_E2E=1 $(GO) test -v -count=1 -timeout 80m ./tools/e2e/

deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

clean:
	rm -rf $(BUILD)

FORCE:

# The guest image embedded by GUEST=linux: Debian's stock kernel (the
# version linux-image-amd64 points at, fetched with apt-get download) and
# the u-root initramfs built by tools/mkinitramfs from the module cache.
GUEST_ROOT := build/guest/root
$(GUEST_ROOT)/.extracted:
	mkdir -p build/guest/deb
	cd build/guest/deb && apt-get download $$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $$2; exit}')
	rm -rf $(GUEST_ROOT) && dpkg-deb -x build/guest/deb/linux-image-*.deb $(GUEST_ROOT)
	touch $@

build/guest/vmlinuz: $(GUEST_ROOT)/.extracted
	cp $$(ls $(GUEST_ROOT)/boot/vmlinuz-* | head -1) $@

build/guest/initramfs.cpio.gz: $(GUEST_ROOT)/.extracted tools/mkinitramfs/main.go $(wildcard tools/guest/*/*.go tools/guest/*/*/*.go) go.mod
	$(GO) run ./tools/mkinitramfs -o $@ -modules $$(ls -d $(GUEST_ROOT)/lib/modules/* | head -1)

build/guest/image/vmlinuz: build/guest/vmlinuz build/guest/initramfs.cpio.gz
	mkdir -p build/guest/image
	cp build/guest/vmlinuz build/guest/initramfs.cpio.gz build/guest/image/

guest: build/guest/image/vmlinuz

# A guest's own operating system: Debian bookworm with systemd, sshd,
# iperf3 and fio on an ext4 image to serve over NBD (vm boot linux
# disk=nbd://... root=vda). tools/mkrootfs rebuilds it only when its
# recipe changed, so the recipe runs every time.
rootfs: $(GUEST_ROOT)/.extracted
	$(GO) run ./tools/mkrootfs -o build/guest/rootfs.img -key build/guest/rootfs_key \
		-modules $$(ls -d $(GUEST_ROOT)/lib/modules/* | head -1)
