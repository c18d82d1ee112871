//! Interrupts for the guest: a vector the host's emulated interrupt controller wants the
//! vCPU to take, delivered as an SVM virtual interrupt (V_IRQ) when the guest can take it
//! (RFLAGS.IF set, no interrupt shadow), exactly like an external interrupt.

use super::SvmVCpu;
use crate::memory::HostMemory;
use crate::vmcb::int_ctl;

/// Why an interrupt could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InjectError {
    /// Vectors 0-31 are exceptions, not interrupts.
    #[error("vCPU {vcpu}: vector {vector} is an exception vector (0-31); interrupts use 32-255")]
    ExceptionVector {
        /// The vCPU.
        vcpu: usize,
        /// The vector asked for.
        vector: u8,
    },
    /// The guest has not taken the interrupt queued before (its IF is clear, or it has not
    /// run since): queue again after the next exit.
    #[error("vCPU {vcpu}: interrupt {pending:#x} is still pending; vector {vector:#x} must wait for the guest to take it")]
    StillPending {
        /// The vCPU.
        vcpu: usize,
        /// The vector queued before.
        pending: u8,
        /// The vector asked for.
        vector: u8,
    },
}

impl<M: HostMemory> SvmVCpu<M> {
    /// Queues interrupt `vector` for the guest: it takes it on the next run as soon as its
    /// RFLAGS.IF allows. One interrupt is pending at a time (the host's interrupt
    /// controller keeps the rest); queueing the pending vector again is no error.
    ///
    /// A guest halted with interrupts on (`sti; hlt` exits as `Halt`, with RIP past the
    /// `HLT`) takes it when it runs again.
    pub fn queue_interrupt(&mut self, vector: u8) -> Result<(), InjectError> {
        let vcpu = self.id;
        if vector < 32 {
            return Err(InjectError::ExceptionVector { vcpu, vector });
        }
        let control = &mut self.vmcb_mut().control;
        if control.int_ctl & int_ctl::V_IRQ != 0 {
            let pending = control.int_vector as u8;
            if pending == vector {
                return Ok(());
            }
            return Err(InjectError::StillPending {
                vcpu,
                pending,
                vector,
            });
        }
        control.int_vector = u32::from(vector);
        control.int_ctl |=
            int_ctl::V_IRQ | int_ctl::V_IGN_TPR | (0xf << int_ctl::V_INTR_PRIO_SHIFT);
        Ok(())
    }

    /// The interrupt queued by [`queue_interrupt`](Self::queue_interrupt) that the guest
    /// has not taken yet.
    pub fn pending_interrupt(&self) -> Option<u8> {
        let control = &self.vmcb().control;
        (control.int_ctl & int_ctl::V_IRQ != 0).then_some(control.int_vector as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcpu::tests::Fixture;

    #[test]
    fn an_interrupt_is_queued_as_v_irq_with_top_priority() {
        let mut f = Fixture::new(0);
        assert_eq!(f.vcpu.pending_interrupt(), None);
        f.vcpu.queue_interrupt(0x30).unwrap();
        let control = &f.vcpu.vmcb().control;
        assert_ne!(control.int_ctl & int_ctl::V_IRQ, 0);
        assert_ne!(control.int_ctl & int_ctl::V_IGN_TPR, 0);
        assert_eq!((control.int_ctl >> 16) & 0xf, 0xf);
        assert_ne!(control.int_ctl & int_ctl::V_INTR_MASKING, 0, "kept");
        assert_eq!(control.int_vector, 0x30);
        assert_eq!(f.vcpu.pending_interrupt(), Some(0x30));
    }

    #[test]
    fn one_interrupt_at_a_time_and_no_exception_vectors() {
        let mut f = Fixture::new(5);
        f.vcpu.queue_interrupt(0x30).unwrap();
        f.vcpu.queue_interrupt(0x30).unwrap();
        assert_eq!(
            f.vcpu.queue_interrupt(0x31),
            Err(InjectError::StillPending {
                vcpu: 5,
                pending: 0x30,
                vector: 0x31
            })
        );
        // The guest took it: the processor cleared V_IRQ.
        f.vcpu.vmcb_mut().control.int_ctl &= !int_ctl::V_IRQ;
        f.vcpu.queue_interrupt(0x31).unwrap();
        assert_eq!(f.vcpu.pending_interrupt(), Some(0x31));
        assert_eq!(
            f.vcpu.queue_interrupt(14),
            Err(InjectError::ExceptionVector {
                vcpu: 5,
                vector: 14
            })
        );
    }
}
