import './base.css';
import './runs.css';
import './monitor.css';
