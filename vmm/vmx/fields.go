package vmx

import "fmt"

// Field is a VMCS field encoding, the operand of VMREAD and VMWRITE (SDM
// Vol. 3C, 24.11.2, Table 24-21): bit 0 access type (1 = high half of a
// 64-bit field), bits 9:1 index, bits 11:10 type, bits 14:13 width, other
// bits reserved (0).
type Field uint32

// FieldWidth is the width class of a VMCS field.
type FieldWidth uint8

// Field widths (bits 14:13 of the encoding).
const (
	Width16      FieldWidth = 0
	Width64      FieldWidth = 1
	Width32      FieldWidth = 2
	WidthNatural FieldWidth = 3
)

// FieldType is the type class of a VMCS field.
type FieldType uint8

// Field types (bits 11:10 of the encoding).
const (
	TypeControl  FieldType = 0
	TypeReadOnly FieldType = 1 // VM-exit information
	TypeGuest    FieldType = 2
	TypeHost     FieldType = 3
)

// Width returns the width class of f.
func (f Field) Width() FieldWidth { return FieldWidth(f>>13) & 3 }

// Type returns the type class of f.
func (f Field) Type() FieldType { return FieldType(f>>10) & 3 }

// Index returns the index part of f (bits 9:1).
func (f Field) Index() uint16 { return uint16(f>>1) & 0x1FF }

// IsHigh reports whether f names the high 32 bits of a 64-bit field.
func (f Field) IsHigh() bool { return f&1 != 0 }

// High returns the encoding of the high 32 bits of a 64-bit field.
func (f Field) High() Field { return f | 1 }

// Valid reports whether f is well formed: reserved bits clear, and access
// type "high" only on 64-bit fields.
func (f Field) Valid() bool {
	if f&^0x6FFF != 0 {
		return false
	}
	return !f.IsHigh() || f.Width() == Width64
}

// Bits returns the number of significant bits of f's value when read with
// VMREAD in 64-bit mode (natural width counts as 64).
func (f Field) Bits() int {
	if f.IsHigh() {
		return 32
	}
	switch f.Width() {
	case Width16:
		return 16
	case Width32:
		return 32
	}
	return 64
}

// Mask returns the mask of the significant bits of f's value.
func (f Field) Mask() uint64 {
	if f.Bits() == 64 {
		return ^uint64(0)
	}
	return 1<<f.Bits() - 1
}

// String returns the SDM name of f, or its encoding in hex.
func (f Field) String() string {
	if n, ok := fieldNames[f]; ok {
		return n
	}
	if f.IsHigh() {
		if n, ok := fieldNames[f&^1]; ok {
			return n + " (high)"
		}
	}
	return fmt.Sprintf("VMCS field %#x", uint32(f))
}

// AllFields returns every field this package names, for dumps.
func AllFields() []Field { return allFields[:] }
