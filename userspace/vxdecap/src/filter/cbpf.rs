//! A classic-BPF interpreter: runs the programs libpcap compiles from
//! tcpdump filter expressions, over inner frames, in safe Rust.
//!
//! Contract: [`Program::new`] checks a program once (known opcodes, jumps
//! inside the program, scratch-memory indices below 16, no constant
//! division by zero, shifts by constants below 32, a `ret` at the end), as
//! the kernel and libpcap's `bpf_validate` do. After that [`Program::run`]
//! cannot panic and ends in at most `len()` steps: classic BPF only jumps
//! forward. Loads outside the captured bytes end the program with 0
//! (reject), as the kernel does; division or modulo by a zero X register
//! also returns 0. `len` loads the *wire* length, which the caller passes
//! (the inner frame's `orig_len`), so `greater`/`less` behave as in tcpdump
//! on truncated mirrors.
#![forbid(unsafe_code)]

/// Most instructions a program may have (the kernel's `BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// Scratch memory words (`BPF_MEMWORDS`).
pub const MEM_WORDS: usize = 16;

/// One classic-BPF instruction, as `struct bpf_insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode: class, size/operation, mode/source.
    pub code: u16,
    /// Jump offset if true (conditional jumps).
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

impl Insn {
    /// An instruction from its four fields.
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Self { code, jt, jf, k }
    }
}

/// Opcode fields (linux/filter.h, pcap/bpf.h).
mod op {
    // Classes.
    pub(super) const LD: u16 = 0x00;
    pub(super) const LDX: u16 = 0x01;
    pub(super) const ST: u16 = 0x02;
    pub(super) const STX: u16 = 0x03;
    pub(super) const ALU: u16 = 0x04;
    pub(super) const JMP: u16 = 0x05;
    pub(super) const RET: u16 = 0x06;
    pub(super) const MISC: u16 = 0x07;
    // Load sizes.
    pub(super) const W: u16 = 0x00;
    pub(super) const H: u16 = 0x08;
    pub(super) const B: u16 = 0x10;
    // Load modes.
    pub(super) const IMM: u16 = 0x00;
    pub(super) const ABS: u16 = 0x20;
    pub(super) const IND: u16 = 0x40;
    pub(super) const MEM: u16 = 0x60;
    pub(super) const LEN: u16 = 0x80;
    pub(super) const MSH: u16 = 0xa0;
    // ALU operations.
    pub(super) const ADD: u16 = 0x00;
    pub(super) const SUB: u16 = 0x10;
    pub(super) const MUL: u16 = 0x20;
    pub(super) const DIV: u16 = 0x30;
    pub(super) const OR: u16 = 0x40;
    pub(super) const AND: u16 = 0x50;
    pub(super) const LSH: u16 = 0x60;
    pub(super) const RSH: u16 = 0x70;
    pub(super) const NEG: u16 = 0x80;
    pub(super) const MOD: u16 = 0x90;
    pub(super) const XOR: u16 = 0xa0;
    // Jumps.
    pub(super) const JA: u16 = 0x00;
    pub(super) const JEQ: u16 = 0x10;
    pub(super) const JGT: u16 = 0x20;
    pub(super) const JGE: u16 = 0x30;
    pub(super) const JSET: u16 = 0x40;
    // Operand source (ALU, JMP) and return value.
    pub(super) const K: u16 = 0x00;
    pub(super) const X: u16 = 0x08;
    pub(super) const A: u16 = 0x10;
    // MISC.
    pub(super) const TAX: u16 = 0x00;
    pub(super) const TXA: u16 = 0x80;
}

/// Why a program was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// No instruction, or more than [`MAX_INSNS`].
    #[error("a program has 1 to {MAX_INSNS} instructions, not {0}")]
    Length(usize),
    /// An opcode this interpreter (and the kernel) does not know.
    #[error("instruction {at}: unknown opcode {code:#06x}")]
    UnknownOpcode {
        /// Instruction index.
        at: usize,
        /// The opcode.
        code: u16,
    },
    /// A jump past the last instruction.
    #[error("instruction {0}: jump out of the program")]
    JumpOutOfRange(usize),
    /// A scratch-memory index of 16 or more.
    #[error("instruction {0}: scratch memory index out of range")]
    MemoryIndex(usize),
    /// Division or modulo by the constant 0.
    #[error("instruction {0}: division by the constant 0")]
    DivisionByZero(usize),
    /// A shift by a constant of 32 or more.
    #[error("instruction {0}: shift by 32 or more")]
    ShiftTooLarge(usize),
    /// The last instruction does not return.
    #[error("the last instruction is not a ret")]
    NoFinalReturn,
}

/// A checked classic-BPF program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
}

impl Program {
    /// Checks `insns` (see the module contract).
    pub fn new(insns: Vec<Insn>) -> Result<Self, ProgramError> {
        if insns.is_empty() || insns.len() > MAX_INSNS {
            return Err(ProgramError::Length(insns.len()));
        }
        for (at, insn) in insns.iter().enumerate() {
            check(at, *insn, insns.len())?;
        }
        match insns.last().map(|i| i.code & 0x07) {
            Some(op::RET) => Ok(Self { insns }),
            _ => Err(ProgramError::NoFinalReturn),
        }
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Never true: a checked program has an instruction at least.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// True when the program accepts `packet` (returns non-zero).
    #[inline]
    pub fn matches(&self, packet: &[u8], wire_len: u32) -> bool {
        self.run(packet, wire_len) != 0
    }

    /// Runs the program over `packet` (the captured bytes) whose length on
    /// the wire was `wire_len`; returns what the program returns (0: reject;
    /// otherwise the snapshot length to keep).
    pub fn run(&self, packet: &[u8], wire_len: u32) -> u32 {
        let mut a: u32 = 0;
        let mut x: u32 = 0;
        let mut mem = [0u32; MEM_WORDS];
        let mut pc = 0usize;
        // Every step moves pc forward (checked in `new`); the bound is for
        // the reader and costs nothing measurable.
        for _ in 0..self.insns.len() {
            let Some(&Insn { code, jt, jf, k }) = self.insns.get(pc) else {
                return 0;
            };
            pc += 1;
            match code & 0x07 {
                op::LD => {
                    a = match code & 0xe0 {
                        op::IMM => k,
                        op::LEN => wire_len,
                        op::MEM => mem[k as usize % MEM_WORDS],
                        op::ABS => match load(packet, code, k) {
                            Some(v) => v,
                            None => return 0,
                        },
                        op::IND => match x.checked_add(k).and_then(|at| load(packet, code, at)) {
                            Some(v) => v,
                            None => return 0,
                        },
                        _ => return 0,
                    }
                }
                op::LDX => {
                    x = match code & 0xe0 {
                        op::IMM => k,
                        op::LEN => wire_len,
                        op::MEM => mem[k as usize % MEM_WORDS],
                        op::MSH => match packet.get(k as usize) {
                            Some(&b) => u32::from(b & 0x0f) * 4,
                            None => return 0,
                        },
                        _ => return 0,
                    }
                }
                op::ST => mem[k as usize % MEM_WORDS] = a,
                op::STX => mem[k as usize % MEM_WORDS] = x,
                op::ALU => {
                    let operand = if code & op::X != 0 { x } else { k };
                    a = match code & 0xf0 {
                        op::ADD => a.wrapping_add(operand),
                        op::SUB => a.wrapping_sub(operand),
                        op::MUL => a.wrapping_mul(operand),
                        op::DIV => match a.checked_div(operand) {
                            Some(v) => v,
                            None => return 0,
                        },
                        op::MOD => match a.checked_rem(operand) {
                            Some(v) => v,
                            None => return 0,
                        },
                        op::OR => a | operand,
                        op::AND => a & operand,
                        op::XOR => a ^ operand,
                        op::LSH => a.checked_shl(operand).unwrap_or(0),
                        op::RSH => a.checked_shr(operand).unwrap_or(0),
                        op::NEG => a.wrapping_neg(),
                        _ => return 0,
                    }
                }
                op::JMP => {
                    let operand = if code & op::X != 0 { x } else { k };
                    let offset = match code & 0xf0 {
                        op::JA => k as usize,
                        test => {
                            let taken = match test {
                                op::JEQ => a == operand,
                                op::JGT => a > operand,
                                op::JGE => a >= operand,
                                op::JSET => a & operand != 0,
                                _ => return 0,
                            };
                            usize::from(if taken { jt } else { jf })
                        }
                    };
                    pc += offset;
                }
                op::RET => {
                    return match code & 0x18 {
                        op::K => k,
                        op::A => a,
                        _ => 0,
                    }
                }
                _ => match code & 0xf8 {
                    op::TAX => x = a,
                    op::TXA => a = x,
                    _ => return 0,
                },
            }
        }
        0
    }
}

/// A big-endian load of the size `code` names at byte `at`; None outside `packet`.
#[inline]
fn load(packet: &[u8], code: u16, at: u32) -> Option<u32> {
    let at = at as usize;
    match code & 0x18 {
        op::W => packet
            .get(at..at.checked_add(4)?)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        op::H => packet
            .get(at..at.checked_add(2)?)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
        op::B => packet.get(at).map(|&b| u32::from(b)),
        _ => None,
    }
}

/// Checks one instruction at index `at` of a program of `len` instructions.
fn check(at: usize, insn: Insn, len: usize) -> Result<(), ProgramError> {
    let unknown = || ProgramError::UnknownOpcode {
        at,
        code: insn.code,
    };
    let memory = |k: u32| {
        if (k as usize) < MEM_WORDS {
            Ok(())
        } else {
            Err(ProgramError::MemoryIndex(at))
        }
    };
    let target = |offset: usize| {
        if at
            .checked_add(1)
            .and_then(|n| n.checked_add(offset))
            .is_some_and(|t| t < len)
        {
            Ok(())
        } else {
            Err(ProgramError::JumpOutOfRange(at))
        }
    };
    let code = insn.code;
    if code > 0xff {
        return Err(unknown());
    }
    match code & 0x07 {
        op::LD => match (code & 0xe0, code & 0x18) {
            (op::IMM | op::LEN, op::W) => Ok(()),
            (op::MEM, op::W) => memory(insn.k),
            (op::ABS | op::IND, op::W | op::H | op::B) => Ok(()),
            _ => Err(unknown()),
        },
        op::LDX => match (code & 0xe0, code & 0x18) {
            (op::IMM | op::LEN, op::W) => Ok(()),
            (op::MEM, op::W) => memory(insn.k),
            (op::MSH, op::B) => Ok(()),
            _ => Err(unknown()),
        },
        op::ST | op::STX if code & 0xf8 == 0 => memory(insn.k),
        op::ALU => {
            let operation = code & 0xf0;
            let by_constant = code & op::X == 0;
            if code & 0x07 != op::ALU || operation > op::XOR {
                return Err(unknown());
            }
            if operation == op::NEG {
                return if code == op::ALU | op::NEG {
                    Ok(())
                } else {
                    Err(unknown())
                };
            }
            if by_constant && matches!(operation, op::DIV | op::MOD) && insn.k == 0 {
                return Err(ProgramError::DivisionByZero(at));
            }
            if by_constant && matches!(operation, op::LSH | op::RSH) && insn.k >= 32 {
                return Err(ProgramError::ShiftTooLarge(at));
            }
            Ok(())
        }
        op::JMP => match code & 0xf0 {
            op::JA if code & op::X == 0 => target(insn.k as usize),
            op::JEQ | op::JGT | op::JGE | op::JSET => {
                target(usize::from(insn.jt))?;
                target(usize::from(insn.jf))
            }
            _ => Err(unknown()),
        },
        op::RET => match code & 0xf8 {
            op::K | op::A => Ok(()),
            _ => Err(unknown()),
        },
        op::MISC => match code & 0xf8 {
            op::TAX | op::TXA => Ok(()),
            _ => Err(unknown()),
        },
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RET_K: u16 = op::RET | op::K;
    const RET_A: u16 = op::RET | op::A;

    fn program(insns: &[(u16, u8, u8, u32)]) -> Program {
        Program::new(
            insns
                .iter()
                .map(|&(c, t, f, k)| Insn::new(c, t, f, k))
                .collect(),
        )
        .expect("a valid program")
    }

    #[test]
    fn loads_are_big_endian_and_out_of_bounds_rejects() {
        let packet = [0x12, 0x34, 0x56, 0x78, 0x9a];
        for (size, at, expected) in [
            (op::W, 1, 0x3456_789a),
            (op::H, 3, 0x789a),
            (op::B, 4, 0x9a),
        ] {
            let p = program(&[(op::LD | size | op::ABS, 0, 0, at), (RET_A, 0, 0, 0)]);
            assert_eq!(p.run(&packet, 5), expected, "size {size:#x}");
            let p = program(&[(op::LD | size | op::ABS, 0, 0, at + 1), (RET_K, 0, 0, 1)]);
            assert_eq!(p.run(&packet, 5), 0, "one byte past the end rejects");
        }
        // Indirect loads add X and catch the overflow of X + k.
        let p = program(&[
            (op::LDX | op::W | op::IMM, 0, 0, u32::MAX),
            (op::LD | op::B | op::IND, 0, 0, 2),
            (RET_K, 0, 0, 1),
        ]);
        assert_eq!(p.run(&packet, 5), 0);
        let p = program(&[
            (op::LDX | op::W | op::IMM, 0, 0, 1),
            (op::LD | op::H | op::IND, 0, 0, 2),
            (RET_A, 0, 0, 0),
        ]);
        assert_eq!(p.run(&packet, 5), 0x789a);
    }

    #[test]
    fn len_is_the_wire_length_and_msh_reads_an_ip_header_length() {
        let p = program(&[(op::LD | op::W | op::LEN, 0, 0, 0), (RET_A, 0, 0, 0)]);
        assert_eq!(p.run(&[0; 10], 1500), 1500);
        let p = program(&[
            (op::LDX | op::B | op::MSH, 0, 0, 0),
            (op::MISC | op::TXA, 0, 0, 0),
            (RET_A, 0, 0, 0),
        ]);
        assert_eq!(p.run(&[0x46], 1), 24);
        assert_eq!(p.run(&[], 0), 0, "msh out of bounds rejects");
    }

    #[test]
    fn alu_wraps_and_division_by_a_zero_register_rejects() {
        let alu = |operation: u16, a: u32, k: u32| {
            program(&[
                (op::LD | op::W | op::IMM, 0, 0, a),
                (op::ALU | operation | op::K, 0, 0, k),
                (RET_A, 0, 0, 0),
            ])
            .run(&[], 0)
        };
        assert_eq!(alu(op::ADD, u32::MAX, 2), 1);
        assert_eq!(alu(op::SUB, 1, 2), u32::MAX);
        assert_eq!(alu(op::MUL, 0x8000_0000, 2), 0);
        assert_eq!(alu(op::DIV, 7, 2), 3);
        assert_eq!(alu(op::MOD, 7, 4), 3);
        assert_eq!(alu(op::AND, 0xf0f0, 0xff00), 0xf000);
        assert_eq!(alu(op::OR, 0xf0, 0x0f), 0xff);
        assert_eq!(alu(op::XOR, 0xff, 0x0f), 0xf0);
        assert_eq!(alu(op::LSH, 1, 31), 0x8000_0000);
        assert_eq!(alu(op::RSH, 0x8000_0000, 31), 1);
        let neg = program(&[
            (op::LD | op::W | op::IMM, 0, 0, 1),
            (op::ALU | op::NEG, 0, 0, 0),
            (RET_A, 0, 0, 0),
        ]);
        assert_eq!(neg.run(&[], 0), u32::MAX);
        for operation in [op::DIV, op::MOD] {
            let p = program(&[
                (op::LD | op::W | op::IMM, 0, 0, 9),
                (op::LDX | op::W | op::IMM, 0, 0, 0),
                (op::ALU | operation | op::X, 0, 0, 0),
                (RET_K, 0, 0, 1),
            ]);
            assert_eq!(p.run(&[], 0), 0);
        }
        let shift = program(&[
            (op::LD | op::W | op::IMM, 0, 0, 1),
            (op::LDX | op::W | op::IMM, 0, 0, 40),
            (op::ALU | op::LSH | op::X, 0, 0, 0),
            (RET_A, 0, 0, 0),
        ]);
        assert_eq!(shift.run(&[], 0), 0, "a shift by 32 or more gives 0");
    }

    #[test]
    fn jumps_scratch_memory_and_registers() {
        // if P[0] > 5 and P[0] & 1: return M[3] (= P[0] stored), else 0.
        let p = program(&[
            (op::LD | op::B | op::ABS, 0, 0, 0),
            (op::ST, 0, 0, 3),
            (op::JMP | op::JGT | op::K, 0, 5, 5),
            (op::JMP | op::JSET | op::K, 0, 4, 1),
            (op::MISC | op::TAX, 0, 0, 0),
            (op::STX, 0, 0, 4),
            (op::LD | op::W | op::MEM, 0, 0, 4),
            (RET_A, 0, 0, 0),
            (RET_K, 0, 0, 0),
        ]);
        assert_eq!(p.run(&[7], 1), 7);
        assert_eq!(p.run(&[8], 1), 0);
        assert_eq!(p.run(&[3], 1), 0);
        let ja = program(&[
            (op::JMP | op::JA, 0, 0, 1),
            (RET_K, 0, 0, 0),
            (RET_K, 0, 0, 9),
        ]);
        assert_eq!(ja.run(&[], 0), 9);
        let jx = program(&[
            (op::LD | op::W | op::IMM, 0, 0, 4),
            (op::LDX | op::W | op::IMM, 0, 0, 4),
            (op::JMP | op::JGE | op::X, 0, 1, 0),
            (RET_K, 0, 0, 1),
            (RET_K, 0, 0, 0),
        ]);
        assert_eq!(jx.run(&[], 0), 1);
    }

    #[test]
    fn bad_programs_are_refused() {
        let refuse = |insns: &[(u16, u8, u8, u32)]| {
            Program::new(
                insns
                    .iter()
                    .map(|&(c, t, f, k)| Insn::new(c, t, f, k))
                    .collect(),
            )
            .expect_err("refused")
        };
        assert_eq!(refuse(&[]), ProgramError::Length(0));
        assert_eq!(
            refuse(&[(op::JMP | op::JA, 0, 0, 1), (RET_K, 0, 0, 0)]),
            ProgramError::JumpOutOfRange(0)
        );
        assert_eq!(
            refuse(&[(op::JMP | op::JA, 0, 0, u32::MAX), (RET_K, 0, 0, 0)]),
            ProgramError::JumpOutOfRange(0)
        );
        assert_eq!(
            refuse(&[(op::JMP | op::JEQ, 0, 1, 0), (RET_K, 0, 0, 0)]),
            ProgramError::JumpOutOfRange(0)
        );
        assert_eq!(
            refuse(&[(op::ST, 0, 0, 16), (RET_K, 0, 0, 0)]),
            ProgramError::MemoryIndex(0)
        );
        assert_eq!(
            refuse(&[(op::ALU | op::DIV | op::K, 0, 0, 0), (RET_K, 0, 0, 0)]),
            ProgramError::DivisionByZero(0)
        );
        assert_eq!(
            refuse(&[(op::ALU | op::LSH | op::K, 0, 0, 32), (RET_K, 0, 0, 0)]),
            ProgramError::ShiftTooLarge(0)
        );
        assert_eq!(
            refuse(&[(op::LD | op::W | op::IMM, 0, 0, 0)]),
            ProgramError::NoFinalReturn
        );
        for code in [0xffff, 0x0038, 0x00e0, 0x00f7, 0x001e] {
            assert!(
                matches!(
                    refuse(&[(code, 0, 0, 0), (RET_K, 0, 0, 0)]),
                    ProgramError::UnknownOpcode { .. }
                ),
                "{code:#x}"
            );
        }
    }

    #[test]
    fn arbitrary_programs_never_panic_and_always_end() {
        // A small xorshift over instruction words: whatever passes the
        // check runs to an end on packets of every length.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Mostly opcodes that exist, so that many programs pass the check.
        let known: Vec<u16> = (0..=0xffu16)
            .filter(|&code| check(0, Insn::new(code, 0, 0, 1), 2).is_ok())
            .collect();
        assert!(known.len() > 40, "{} opcodes", known.len());
        let packets: Vec<Vec<u8>> = (0..64).map(|n| (0..n as u8).collect()).collect();
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = 1 + (next() % 12) as usize;
            let insns: Vec<Insn> = std::iter::repeat_with(|| {
                let r = next();
                let code = if r & 0xf000_0000 == 0 {
                    (r & 0xff) as u16
                } else {
                    known[(r & 0xff) as usize % known.len()]
                };
                Insn::new(code, (r >> 8) as u8 % 4, (r >> 16) as u8 % 4, {
                    let k = (r >> 32) as u32;
                    if r & 0x100_0000 != 0 {
                        k % 70
                    } else {
                        k
                    }
                })
            })
            .take(len)
            .chain(std::iter::once(Insn::new(RET_A, 0, 0, 0)))
            .collect();
            if let Ok(p) = Program::new(insns) {
                accepted += 1;
                for packet in &packets {
                    p.run(packet, packet.len() as u32);
                }
            }
        }
        assert!(accepted > 1000, "the generator makes valid programs too");
    }
}
