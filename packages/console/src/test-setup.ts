// Tells React that tests wrap updates in act() (testing-library does), so it
// warns about updates that escape it.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;
