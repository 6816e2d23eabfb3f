"""DC motor: current, energy, winding temperature and wear.

Current. Stopped, the driver electronics draw ``idle_current_a``. Started at t = 0 the armature
current follows

    i(t) = i_ss + (i_inrush - i_ss) · exp(-t / tau_inrush) + A · sin(w·t),
    i_ss = i_0 + load · i_load

with ``load`` 1 at constant speed (i_ss = 0.9 + 0.3 = 1.2 A by default) and more while the axis
accelerates. A stalled rotor has no back-EMF and draws the locked-rotor current; faults replace
i_ss (see ``faults.py``). The ripple A·sin(w·t) is zero except under VIBRATION
(A = magnitude·``vibration_ripple_a``, w = 2π·``vibration_hz``).

Energy. Within a step i(t) is known in closed form, so the charge
Q = ∫i dt = a·dt + b·tau·(e0 - e1) + A·(cos w·t0 - cos w·t1)/w is exact, and
energy_wh += V·Q / 3600 for any dt.

Temperature. C·dT/dt = R·i² - (T - T_amb) / R_th. With the exact step mean of i² (∫i² dt in
closed form, ripple included) as heating power P the step is solved exactly:
T ← T_inf + (T - T_inf)·exp(-dt / (R_th·C)), T_inf = T_amb + P·R_th.

Health in [0, 1] only decreases (``maintain`` resets it): per running hour
``wear_per_running_h``·load, per start ``wear_per_start``, per hour and kelvin above
``wear_temperature_c``, per hour and ampere above ``current_limit_a``, per running hour of
VIBRATION. A worn bearing is a state, not a rate: its friction current (BEARING_WEAR) is the
symptom of its damage, so the health it takes is ``bearing_health_per_a`` per ampere of
friction, taken when the friction grows (a fault set with a larger magnitude than the bearing
had since the last maintenance) and kept when the fault is cleared. With the defaults a new
motor reaches the 0.5 maintenance threshold at 0.45 A of friction (magnitude 1.5; a little
less after what use took): a bearing that wears out fails by its wear, at a time a real line
can foresee from its current. A failing motor (MOTOR_FAILURE, a sudden failure) instead loses
health as h ← h_f + (h - h_f)·exp(-dt / ``failure_tau_s``) toward h_f = ``failed_health``,
where it sits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from stf_nodes.sim.faults import Fault, FaultKind
from stf_nodes.sim.model import MotorSnapshot
from stf_nodes.sim.params import Doc, ParameterConfig

BEARING_EXTRA_CURRENT_A = 0.3  # friction current per unit BEARING_WEAR magnitude


@dataclass(frozen=True, kw_only=True)
class MotorConfig(ParameterConfig):
    """Electrical, thermal and wear parameters shared by the motors of one station."""

    voltage_v: Annotated[float, Doc('supply voltage', unit='V', low=0.0)] = 24.0
    idle_current_a: Annotated[
        float, Doc('current drawn by a stopped motor (driver electronics)', unit='A', low=0.0)
    ] = 0.05
    inrush_current_a: Annotated[
        float, Doc('start-up current at t = 0, also the locked-rotor current', unit='A', low=0.0)
    ] = 2.5
    inrush_tau_s: Annotated[
        float, Doc('decay time constant of the inrush current', unit='s', low=0.0)
    ] = 0.15
    no_load_current_a: Annotated[float, Doc('running current without load', unit='A', low=0.0)] = (
        0.9
    )
    load_current_a: Annotated[
        float,
        Doc('extra running current per unit load (load 1 at cruise speed)', unit='A', low=0.0),
    ] = 0.3
    current_limit_a: Annotated[
        float, Doc('rated current; the excess wears the motor', unit='A', low=0.0)
    ] = 1.5
    winding_resistance_ohm: Annotated[
        float, Doc('winding resistance for I²R heating', unit='Ω', low=0.0)
    ] = 1.5
    thermal_resistance_k_w: Annotated[
        float, Doc('winding-to-ambient thermal resistance', unit='K/W', low=0.0)
    ] = 5.0
    thermal_capacity_j_k: Annotated[float, Doc('winding thermal capacity', unit='J/K', low=0.0)] = (
        60.0
    )
    ambient_c: Annotated[float, Doc('ambient temperature', unit='°C', low=-273.15)] = 25.0
    wear_per_running_h: Annotated[
        float, Doc('health lost per running hour at load 1', unit='1/h', low=0.0, high=1.0)
    ] = 5e-4
    wear_per_start: Annotated[
        float, Doc('health lost per start', unit='1/start', low=0.0, high=1.0)
    ] = 2e-6
    wear_temperature_c: Annotated[
        float, Doc('winding temperature above which heat wears the motor', unit='°C', low=-273.15)
    ] = 70.0
    wear_per_kelvin_h: Annotated[
        float,
        Doc(
            'health lost per hour and kelvin above wear_temperature_c',
            unit='1/(K·h)',
            low=0.0,
            high=1.0,
        ),
    ] = 1e-3
    wear_per_overcurrent_ah: Annotated[
        float, Doc('health lost per hour and ampere above current_limit_a', unit='1/(A·h)', low=0.0)
    ] = 0.5
    bearing_health_per_a: Annotated[
        float,
        Doc('health a worn bearing takes per ampere of its friction current', unit='1/A', low=0.0),
    ] = 1.1
    vibration_ripple_a: Annotated[
        float, Doc('current ripple amplitude under VIBRATION magnitude 1', unit='A', low=0.0)
    ] = 0.3
    vibration_hz: Annotated[float, Doc('frequency of that ripple', unit='Hz', low=0.0)] = 3.7
    vibration_wear_per_h: Annotated[
        float,
        Doc('extra health lost per running hour under VIBRATION magnitude 1', unit='1/h', low=0.0),
    ] = 0.02
    failed_health: Annotated[
        float, Doc('health a MOTOR_FAILURE collapses toward', low=0.0, high=1.0)
    ] = 0.4
    failure_tau_s: Annotated[float, Doc('time constant of that collapse', unit='s', low=0.0)] = 20.0


class Motor:
    """One DC motor. ``command`` sets direction and load; ``step`` integrates physics."""

    def __init__(
        self, *, motor_id: str, config: MotorConfig, fault_kinds: frozenset[FaultKind]
    ) -> None:
        self.motor_id = motor_id
        self.config = config
        self.fault_kinds = fault_kinds
        self.fault: Fault | None = None
        self.direction = 0
        self.load = 1.0
        self.current_a = config.idle_current_a
        self.temperature_c = config.ambient_c
        self.health = 1.0
        self.energy_wh = 0.0
        self.start_count = 0
        self.runtime_s = 0.0
        self.bearing_damage = 0.0  # health the bearing's friction took since the last maintenance
        self._since_start_s = 0.0

    @property
    def running(self) -> bool:
        return self.direction != 0

    @property
    def stalled(self) -> bool:
        return self._fault_is(FaultKind.STALL)

    @property
    def failed(self) -> bool:
        return self._fault_is(FaultKind.MOTOR_FAILURE)

    def fault_magnitude(self, kind: FaultKind) -> float:
        """Magnitude of the active fault if it is of ``kind``, else 0."""
        fault = self.fault
        return fault.magnitude if fault is not None and fault.kind is kind else 0.0

    def _fault_is(self, kind: FaultKind) -> bool:
        return self.fault is not None and self.fault.kind is kind

    @property
    def bearing_friction_a(self) -> float:
        """Extra running current of a worn bearing (0 without BEARING_WEAR)."""
        return BEARING_EXTRA_CURRENT_A * self.fault_magnitude(FaultKind.BEARING_WEAR)

    def set_fault(self, fault: Fault | None) -> None:
        """Put ``fault`` on the motor (None clears); a bearing worn further takes its health."""
        self.fault = fault
        damage = self.config.bearing_health_per_a * self.bearing_friction_a
        if damage > self.bearing_damage:
            self.health = max(0.0, self.health - (damage - self.bearing_damage))
            self.bearing_damage = damage

    def command(self, direction: int, load: float = 1.0) -> None:
        """Run forward (+1), reverse (-1) or stop (0); a new run counts as a start."""
        if direction != 0 and direction != self.direction:
            self.start_count += 1
            self._since_start_s = 0.0
            self.health = max(0.0, self.health - self.config.wear_per_start)
        self.direction = direction
        self.load = load
        # The current follows a command at once (small inductance).
        self.current_a = self._current_at(self._since_start_s)

    def maintain(self) -> None:
        """Maintenance: restore health to 1 (the only way health goes up), a new bearing."""
        self.health = 1.0
        self.bearing_damage = 0.0

    def _current_terms(self) -> tuple[float, float]:
        """(a, b) of i(t) = a + b·exp(-t/tau) for the present command and fault."""
        c = self.config
        if not self.running:
            return c.idle_current_a, 0.0
        if self.stalled:
            return self.fault_magnitude(FaultKind.STALL), 0.0
        steady = c.no_load_current_a + self.load * c.load_current_a
        steady += self.bearing_friction_a
        forced = self.fault_magnitude(FaultKind.OVERCURRENT) or self.fault_magnitude(
            FaultKind.MOTOR_FAILURE
        )
        steady = forced or steady
        return steady, c.inrush_current_a - steady

    def _ripple(self) -> tuple[float, float]:
        """(amplitude A, angular frequency w) of the current ripple; A is 0 without VIBRATION."""
        c = self.config
        amplitude = c.vibration_ripple_a * self.fault_magnitude(FaultKind.VIBRATION)
        return (amplitude if self.running else 0.0), 2.0 * math.pi * c.vibration_hz

    def _current_at(self, since_start_s: float) -> float:
        a, b = self._current_terms()
        amplitude, w = self._ripple()
        inrush = b * math.exp(-since_start_s / self.config.inrush_tau_s)
        return a + inrush + amplitude * math.sin(w * since_start_s)

    def step(self, dt: float) -> None:
        """Advance current, energy, temperature and health by ``dt`` seconds."""
        c = self.config
        a, b = self._current_terms()
        amplitude, w = self._ripple()
        tau = c.inrush_tau_s
        s0, s1 = self._since_start_s, self._since_start_s + dt
        e0, e1 = math.exp(-s0 / tau), math.exp(-s1 / tau)
        charge = a * dt + b * tau * (e0 - e1)
        charge_sq = a * a * dt + 2 * a * b * tau * (e0 - e1) + b * b * tau / 2 * (e0**2 - e1**2)
        if amplitude:
            cos0, cos1 = math.cos(w * s0), math.cos(w * s1)
            sin0, sin1 = math.sin(w * s0), math.sin(w * s1)
            sin_integral = (cos0 - cos1) / w  # ∫ sin(w s) ds
            sin_sq_integral = dt / 2 - (math.sin(2 * w * s1) - math.sin(2 * w * s0)) / (4 * w)
            k = 1.0 / tau

            def decaying_sin(e: float, sin: float, cos: float) -> float:
                return e * (-k * sin - w * cos) / (k * k + w * w)  # antiderivative of e^-ks sin

            mixed = decaying_sin(e1, sin1, cos1) - decaying_sin(e0, sin0, cos0)
            charge += amplitude * sin_integral
            charge_sq += 2 * a * amplitude * sin_integral + amplitude**2 * sin_sq_integral
            charge_sq += 2 * b * amplitude * mixed
        self.current_a = a + b * e1 + amplitude * math.sin(w * s1)
        self.energy_wh += c.voltage_v * charge / 3600.0

        heating_w = c.winding_resistance_ohm * charge_sq / dt
        t_inf = c.ambient_c + heating_w * c.thermal_resistance_k_w
        decay = math.exp(-dt / (c.thermal_resistance_k_w * c.thermal_capacity_j_k))
        self.temperature_c = t_inf + (self.temperature_c - t_inf) * decay

        if self.running:
            self.runtime_s += dt
        self.health = min(self.health, max(0.0, self._worn_health(charge / dt, dt)))
        self._since_start_s += dt

    def _worn_health(self, mean_current_a: float, dt: float) -> float:
        """Health after ``dt``; a failing motor follows its collapse instead of the wear terms."""
        c = self.config
        if self.failed:
            excess = max(0.0, self.health - c.failed_health)
            return self.health - excess * (1.0 - math.exp(-dt / c.failure_tau_s))
        wear_per_h = max(0.0, self.temperature_c - c.wear_temperature_c) * c.wear_per_kelvin_h
        wear_per_h += max(0.0, mean_current_a - c.current_limit_a) * c.wear_per_overcurrent_ah
        if self.running:
            wear_per_h += c.wear_per_running_h * self.load
            wear_per_h += c.vibration_wear_per_h * self.fault_magnitude(FaultKind.VIBRATION)
        return self.health - wear_per_h * dt / 3600.0

    def snapshot(self, encoder_pulses: int = 0) -> MotorSnapshot:
        return MotorSnapshot(
            motor_id=self.motor_id,
            running=self.running,
            direction=self.direction,
            current_a=self.current_a,
            voltage_v=self.config.voltage_v,
            power_w=self.config.voltage_v * self.current_a,
            energy_wh=self.energy_wh,
            temperature_c=self.temperature_c,
            health=self.health,
            encoder_pulses=encoder_pulses,
            start_count=self.start_count,
            runtime_h=self.runtime_s / 3600.0,
            fault=self.fault.kind.value if self.fault else '',
        )
